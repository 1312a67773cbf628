"""Annotated video: the analysed frames again, with each face's box, label and person (track)
number drawn (and, with privacy on, each face blurred), encoded to H.264 by ffmpeg."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from maskwatch.core.records import FaceRecord
from worker.pipeline.decode import MediaInfo, iter_frames
from worker.pipeline.evidence import annotated, blur_faces
from worker.pipeline.ffmpeg_process import stop_process

logger = logging.getLogger(__name__)

ENCODE_TIMEOUT_S = 3600.0
STOP_GRACE_S = 5.0


class EncodeError(RuntimeError):
    """ffmpeg could not write the annotated video."""


def build_h264_args(out: Path, *, fps: float, size_wh: tuple[int, int]) -> list[str]:
    """ffmpeg argv: raw RGB frames of ``size_wh`` on stdin to an H.264 MP4 at ``out``.

    Odd sizes are padded by one pixel (yuv420p needs even sides); ``file:`` keeps a name
    that starts with a dash or holds a colon from being read as an option or a protocol.
    """
    width, height = size_wh
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps:g}",
        "-i", "pipe:0",
        "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
        "-movflags", "+faststart",
        f"file:{out.absolute()}",
    ]  # fmt: skip


def write_annotated_video(
    info: MediaInfo,
    faces_by_frame: Mapping[int, list[FaceRecord]],
    out: Path,
    *,
    sample_fps: float | None,
    blur: bool,
    timeout_s: float = ENCODE_TIMEOUT_S,
) -> int:
    """Decode the footage's sampled frames again and write them annotated to ``out``.

    The frames are those the analysis read (``sample_fps``), so each shows exactly the boxes
    stored for it; the video plays at that rate. Returns the number of frames written.

    Raises:
        DecodeError, TimeoutError: the footage cannot be read again.
        EncodeError: ffmpeg failed to write ``out`` (its reason included).
    """
    fps = sample_fps if info.kind == "video" and sample_fps else (info.fps or 1.0)
    if info.kind == "video" and info.fps:
        fps = min(fps, info.fps)
    deadline = time.monotonic() + timeout_s
    frames = iter_frames(info, sample_fps=sample_fps, timeout_s=timeout_s)
    proc: subprocess.Popen[bytes] | None = None
    written = 0
    try:
        for frame in frames:
            faces = faces_by_frame.get(frame.frame_index, [])
            image = blur_faces(frame.image, faces) if blur else frame.image
            picture = np.asarray(annotated(image, faces))
            if proc is None:
                out.parent.mkdir(parents=True, exist_ok=True)
                size = (picture.shape[1], picture.shape[0])
                proc = subprocess.Popen(
                    build_h264_args(out, fps=fps, size_wh=size),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            assert proc.stdin is not None
            try:
                proc.stdin.write(picture.tobytes())
            except BrokenPipeError:
                break  # ffmpeg stopped: its exit status and message follow
            written += 1
        if proc is None:
            raise EncodeError(f"{info.path.name}: no frame to write")
        # communicate() closes stdin, upon which ffmpeg finishes the file.
        _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        if proc.returncode != 0:
            reason = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise EncodeError(f"{out.name}: ffmpeg could not write it ({reason[0][:200]})")
    finally:
        frames.close()
        if proc is not None:
            stop_process(proc, STOP_GRACE_S)
    logger.info("wrote %d annotated frame(s) to %s", written, out)
    return written
