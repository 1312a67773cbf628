"""What MaskWatch knows about an input file and the frames decoded from it.

The facts every decoding module shares: which container formats are read at all, what
probing learnt about a file, one decoded frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

# The demuxers MaskWatch reads, by ffmpeg's short name (the first of the names ffprobe reports
# as format_name). Each reads only the bytes of the one file it is given: playlists (hls,
# dash), concat lists, image sequences (image2) and every other demuxer that opens further
# files or URLs are refused, whatever the file is called. mov follows external data
# references only with enable_drefs, which is off by default.
ACCEPTED_DEMUXERS = (
    "mov",  # MP4, MOV, M4V, 3GP
    "matroska",  # MKV, WebM
    "avi",
    "mpegts",  # TS, MTS
    "mpeg",  # MPEG-PS (.mpg)
    "flv",
    "asf",  # WMV
    "h264",  # raw H.264 stream
    "hevc",  # raw H.265 stream
    "jpeg_pipe",
    "png_pipe",
    "bmp_pipe",
    "webp_pipe",
    "tiff_pipe",
)
ACCEPTED_FORMATS_TEXT = (
    "MP4/MOV/3GP, Matroska/WebM, AVI, MPEG-TS, MPEG-PS, FLV, WMV, raw H.264/H.265 video; "
    "JPEG, PNG, BMP, WebP, TIFF images"
)


@dataclass(frozen=True)
class MediaInfo:
    """What ``probe`` learnt about one input file.

    ``width`` and ``height`` are the decoded frame size as displayed: after a video stream's
    rotation matrix (ffmpeg auto-rotates when decoding) or a still's EXIF orientation
    (applied by the decode's own filters) is applied.
    """

    path: Path
    kind: Literal["video", "image"]
    width: int
    height: int
    fps: float | None  # source frame rate; None for images
    duration_s: float | None  # None for images
    start_s: float  # the video stream's first timestamp in the file's clock, 0 if absent
    codec: str
    demuxer: str  # ffmpeg's name for the container format, one of ACCEPTED_DEMUXERS (``-f``)
    stream_index: int = 0  # the decoded stream (cover art and other streams are skipped)
    container_start_s: float = 0.0  # the file's start time, which ffmpeg's -ss is relative to
    orientation: int = 1  # a still's EXIF Orientation (1-8; 1 = stored upright)
    display_name: str = ""  # what errors call the file (the user's name for it); "" = path.name

    @property
    def name(self) -> str:
        """The file's name for users: the name it was uploaded under, never a server path."""
        return self.display_name or self.path.name


@dataclass(frozen=True)
class Frame:
    """One decoded frame."""

    frame_index: int  # index of the frame in the source stream (0 for an image)
    timestamp_s: float  # presentation time relative to the stream start
    image: np.ndarray  # (H, W, 3) uint8 RGB
