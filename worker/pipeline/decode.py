"""Probe videos and images and stream sampled RGB frames out of them with ffmpeg."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from worker.pipeline.errors import DecodeError, DecoderKilled, InputError, UnsupportedMediaError

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 30.0
MAX_SIDE_PX = 8192  # longest accepted width or height
MAX_PIXELS = 40_000_000  # largest accepted frame area

_STOP_GRACE_S = 2.0  # how long ffmpeg gets to exit after SIGTERM before SIGKILL
_FPS_MAX_DENOMINATOR = 10_000  # recovers 30000/1001 and friends from a float
_BOUND_TOLERANCE_FRAMES = 1e-6  # a segment bound this close to a frame's time includes it
_PIPE_SIZE = 1 << 20  # Linux pipe buffer for the frame pipe (fewer wake-ups per frame)
_IMAGE_CODECS = frozenset(
    {"mjpeg", "png", "bmp", "webp", "tiff", "gif", "jpeg2000", "jpegls", "ppm", "pgm", "pam", "qoi"}
)
# ffmpeg stderr phrases (lower case) that mean frames were lost: the file is truncated or
# corrupt. Other error lines (e.g. h264 "mmco: unref short failure" after a seek) are logged.
_DATA_LOSS_MARKERS = (
    "partial file",
    "ended prematurely",
    "invalid data found",
    "corrupt",
    "error while decoding",
    "truncat",
    "end of file",
)
_LOG_PREFIX = re.compile(r"^\[[^\]]*@ ?0x[0-9a-f]+\]\s*")
_INVALID_SIZE = re.compile(r"Picture size (?P<width>\d+)x(?P<height>\d+) is invalid")
_REFUSED_FORMAT = re.compile(r"^\[(?P<demuxer>[\w-]+) @ ?0x[0-9a-f]+\] Format not on whitelist")

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
_STILL_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg_pipe"),
    (b"\x89PNG\r\n\x1a\n", "png_pipe"),
    (b"II*\x00", "tiff_pipe"),
    (b"MM\x00*", "tiff_pipe"),
    (b"BM", "bmp_pipe"),
)
_EXIF_ORIENTATION = 0x0112
_PILLOW_FORMATS = {"jpeg_pipe": "JPEG", "png_pipe": "PNG", "webp_pipe": "WEBP", "tiff_pipe": "TIFF"}
# ffmpeg filters that turn a still stored with EXIF Orientation N upright (as Pillow's
# ImageOps.exif_transpose does); transpose=0 is the main diagonal, 3 the other one.
_ORIENTATION_FILTERS = {
    1: "",
    2: "hflip",
    3: "hflip,vflip",
    4: "vflip",
    5: "transpose=0",
    6: "transpose=1",
    7: "transpose=3",
    8: "transpose=2",
}
# Input options for every ffprobe and ffmpeg run: only demuxers from the list above, and only
# the file protocol, so that no input can make ffmpeg read anything but the uploaded file.
_RESTRICTED_INPUT = [
    "-protocol_whitelist", "file", "-format_whitelist", ",".join(ACCEPTED_DEMUXERS)
]  # fmt: skip


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


# --------------------------------------------------------------------------- probe


def build_probe_args(path: Path, demuxer: str | None = None) -> list[str]:
    """The ffprobe argv that describes ``path``'s format and streams as JSON.

    Only ``ACCEPTED_DEMUXERS`` may open it: any other format fails before its demuxer reads
    a byte past the probe, so a playlist never gets to open the files it names. ``demuxer``
    skips ffprobe's guess (which weighs the file's name) for a still recognised by its
    signature.
    """
    forced = [] if demuxer is None else ["-f", demuxer]
    return [
        "ffprobe",
        "-v",
        "error",
        *_RESTRICTED_INPUT,
        *forced,
        "-show_format",
        "-show_streams",
        "-of",
        "json",
        _input_url(path),
    ]


def build_packet_count_args(path: Path, demuxer: str, stream_index: int) -> list[str]:
    """The ffprobe argv that counts one stream's packets (demux only, no decoding)."""
    return [
        "ffprobe",
        "-v",
        "error",
        *_RESTRICTED_INPUT,
        "-f",
        demuxer,
        "-select_streams",
        str(stream_index),
        "-count_packets",
        "-show_entries",
        "stream=nb_read_packets",
        "-of",
        "csv=p=0",
        _input_url(path),
    ]


def probe(path: Path, display_name: str | None = None) -> MediaInfo:
    """Describe a video or image file, rejecting what cannot be analysed.

    Errors, here and when its frames are decoded, name the file ``display_name`` (the name
    the user knows: an upload is stored under a generated one), else its base name.

    Raises:
        InputError: the file is missing, a directory or empty.
        DecodeError: ffprobe cannot read it (not media, or damaged beyond reading).
        UnsupportedMediaError: no video stream, no frames, or an absurd frame size.
        TimeoutError: ffprobe took longer than ``PROBE_TIMEOUT_S``.
    """
    name = display_name or path.name
    if not path.exists():
        raise InputError(f"{name}: file not found")
    if path.is_dir():
        raise InputError(f"{name}: is a directory, not a video or image file")
    if path.stat().st_size == 0:
        raise InputError(f"{name}: file is empty (0 bytes)")

    probe_args = build_probe_args(path, _still_demuxer(path))
    rc, out, err = _run(probe_args, PROBE_TIMEOUT_S, what=f"{name}: probing")
    _raise_if_killed(name, "ffprobe", rc)
    if rc != 0:
        for line in err.splitlines():
            refused = _REFUSED_FORMAT.match(line)
            if refused:
                raise UnsupportedMediaError(_not_accepted(name, refused["demuxer"]))
        reason = _short_reason(err.splitlines(), path, name)
        raise DecodeError(f"{name}: not a readable video or image file ({reason})")
    report: dict[str, Any] = json.loads(out or "{}")
    fmt: dict[str, Any] = report.get("format", {})
    streams: list[dict[str, Any]] = report.get("streams", [])
    # ffprobe was told the same list; checked again here so that the list has one meaning.
    demuxer = str(fmt.get("format_name") or "unknown").split(",")[0]
    if demuxer not in ACCEPTED_DEMUXERS:
        raise UnsupportedMediaError(_not_accepted(name, demuxer))

    stream = _pick_video_stream(streams)
    if stream is None:
        if any(s.get("codec_type") == "audio" for s in streams):
            raise UnsupportedMediaError(f"{name}: contains only audio, no video stream")
        raise UnsupportedMediaError(f"{name}: contains no video stream")

    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    if not (width and height):
        # A decoder refuses a frame too large for it and leaves the size 0x0: the size is
        # in its complaint ("Picture size 20000x20000 is invalid").
        refused = _INVALID_SIZE.search(err)
        if refused:
            width, height = int(refused["width"]), int(refused["height"])
    if _rotation_deg(stream) % 180 == 90:
        width, height = height, width
    codec = str(stream.get("codec_name") or "unknown")
    stream_index = int(stream.get("index", 0))
    duration_s = _positive_float(stream.get("duration")) or _positive_float(fmt.get("duration"))
    if _looks_like_image(fmt, stream, duration_s):
        _check_size(name, width, height)
        orientation = _exif_orientation(path, demuxer)
        if orientation >= 5:  # turned by a quarter: the displayed sides swap
            width, height = height, width
        return MediaInfo(
            path=path,
            kind="image",
            width=width,
            height=height,
            fps=None,
            duration_s=None,
            start_s=0.0,
            codec=codec,
            demuxer=demuxer,
            stream_index=stream_index,
            orientation=orientation,
            display_name=name,
        )

    frames = None
    if duration_s is None:
        # Some containers (raw streams, live recordings) carry no duration: count the frames.
        frames = _count_packets(path, name, demuxer, stream_index)
        if frames == 0:
            raise UnsupportedMediaError(f"{name}: the video stream contains no frames")
    _check_size(name, width, height)
    fps = _stream_fps(stream)
    if fps is None:
        raise UnsupportedMediaError(f"{name}: the video stream has no usable frame rate")
    if frames is not None:
        duration_s = float(frames / fps)
    return MediaInfo(
        path=path,
        kind="video",
        width=width,
        height=height,
        fps=float(fps),
        duration_s=duration_s,
        start_s=_float_or_zero(stream.get("start_time")),
        codec=codec,
        demuxer=demuxer,
        stream_index=stream_index,
        container_start_s=_float_or_zero(fmt.get("start_time")),
        display_name=name,
    )


def _still_demuxer(path: Path) -> str | None:
    """The *_pipe demuxer of a still, told by its first bytes; None for anything else.

    Left to itself, ffprobe may pick ``image2`` for a JPEG named .jpg (it trusts the name
    when the content probe is unsure, e.g. behind a large EXIF block). image2 reads image
    sequences, i.e. other files, so it is not accepted: stills get their own demuxer.
    """
    with path.open("rb") as file:
        head = file.read(12)
    for signature, demuxer in _STILL_SIGNATURES:
        if head.startswith(signature):
            return demuxer
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp_pipe"
    return None


def _exif_orientation(path: Path, demuxer: str) -> int:
    """A still's EXIF Orientation tag (1-8), 1 when it has none or it cannot be read.

    ffmpeg 5 ignores the tag (newer versions rotate some formats): the decode turns the
    frame itself, so every still comes out upright whatever the ffmpeg version.
    """
    pillow_format = _PILLOW_FORMATS.get(demuxer)
    if pillow_format is None:
        return 1
    from PIL import Image  # only for stills

    try:
        with Image.open(path, formats=[pillow_format]) as image:
            value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception as exc:  # a damaged EXIF block is ffmpeg's to judge, not ours
        logger.info("%s: EXIF orientation unreadable (%s); taken as upright", path.name, exc)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _not_accepted(name: str, demuxer: str) -> str:
    return f"{name}: format {demuxer!r} is not accepted (accepted: {ACCEPTED_FORMATS_TEXT})"


def _pick_video_stream(streams: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first real video stream: cover art (attached_pic) is a video stream too."""
    for stream in streams:
        if stream.get("codec_type") != "video":
            continue
        if stream.get("disposition", {}).get("attached_pic"):
            continue
        return stream
    return None


def _rotation_deg(stream: dict[str, Any]) -> int:
    for side_data in stream.get("side_data_list", []):
        if "rotation" in side_data:
            return int(round(float(side_data["rotation"]))) % 360
    rotate = stream.get("tags", {}).get("rotate")
    return int(rotate) % 360 if rotate and str(rotate).lstrip("-").isdigit() else 0


def _check_size(name: str, width: int, height: int) -> None:
    if min(width, height) < 1 or max(width, height) > MAX_SIDE_PX or width * height > MAX_PIXELS:
        raise UnsupportedMediaError(
            f"{name}: unsupported frame size {width}x{height} px (width and height must be "
            f"1 to {MAX_SIDE_PX} px and the frame at most {MAX_PIXELS // 1_000_000} megapixels)"
        )


def _looks_like_image(
    fmt: dict[str, Any], stream: dict[str, Any], duration_s: float | None
) -> bool:
    format_name = str(fmt.get("format_name", ""))
    if format_name == "image2" or format_name.endswith("_pipe"):
        return True
    single_frame = str(stream.get("nb_frames", "")) in ("", "1", "N/A")
    return stream.get("codec_name") in _IMAGE_CODECS and duration_s is None and single_frame


def _stream_fps(stream: dict[str, Any]) -> Fraction | None:
    """The nominal frame rate; r_frame_rate when it agrees with the average (CFR)."""
    real = _parse_rate(stream.get("r_frame_rate"))
    average = _parse_rate(stream.get("avg_frame_rate"))
    if real is not None and average is not None and abs(average / real - 1) > 0.01:
        logger.warning(
            "stream frame rates disagree (r=%s avg=%s): variable frame rate? using the average",
            real,
            average,
        )
        return average
    return real or average


def _parse_rate(value: object) -> Fraction | None:
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return rate if 0 < rate <= 1000 else None


def _positive_float(value: object) -> float | None:
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def _float_or_zero(value: object) -> float:
    try:
        number = float(str(value))
    except ValueError:
        return 0.0
    return number if math.isfinite(number) else 0.0


def _count_packets(path: Path, name: str, demuxer: str, stream_index: int) -> int:
    rc, out, err = _run(
        build_packet_count_args(path, demuxer, stream_index),
        PROBE_TIMEOUT_S,
        what=f"{name}: probing",
    )
    _raise_if_killed(name, "ffprobe", rc)
    if rc != 0:
        reason = _short_reason(err.splitlines(), path, name)
        raise DecodeError(f"{name}: not a readable video file ({reason})")
    digits = out.strip().split("\n")[0].strip(" ,")
    return int(digits) if digits.isdigit() else 0


# ------------------------------------------------------------------------ sampling


@dataclass(frozen=True)
class _Range:
    """Source frame indices [first, stop) of a segment and the sampling step."""

    first: int
    stop: int | None  # exclusive; None = to the end of the stream
    step: Fraction | None  # source frames per sample (> 1); None = every frame


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(_FPS_MAX_DENOMINATOR)


def _round_half_away(value: Fraction) -> int:
    """Round like ffmpeg's ``round()`` (half away from zero), exactly."""
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


def _first_frame_at_or_after(time_s: float, fps: Fraction) -> int:
    position = Fraction(time_s) * fps
    nearest = round(position)
    if abs(position - nearest) <= _BOUND_TOLERANCE_FRAMES:
        return int(nearest)
    return math.ceil(position)


def _frame_range(
    info: MediaInfo, sample_fps: float | None, start_s: float, end_s: float | None
) -> _Range:
    if info.fps is None:
        raise ValueError(f"{info.name}: a video needs a frame rate")
    _check_range(sample_fps, start_s, end_s)
    fps = _fps_fraction(info.fps)
    first = _first_frame_at_or_after(start_s, fps)
    stop = None if end_s is None else _first_frame_at_or_after(end_s, fps)
    step = None
    if sample_fps is not None:
        step = fps / Fraction(sample_fps).limit_denominator(_FPS_MAX_DENOMINATOR)
        if step <= 1:
            step = None
    return _Range(first=first, stop=stop, step=step)


def _check_range(sample_fps: float | None, start_s: float, end_s: float | None) -> None:
    if sample_fps is not None and not sample_fps > 0:
        raise ValueError(f"sample_fps must be positive, got {sample_fps}")
    if not start_s >= 0:
        raise ValueError(f"start_s must be >= 0, got {start_s}")
    if end_s is not None and not end_s >= start_s:
        raise ValueError(f"end_s must be >= start_s, got [{start_s}, {end_s})")


def _ceil_div(numerator: int, denominator: int) -> int:
    return -((-numerator) // denominator)


def _sample_indices(frames: _Range) -> Iterator[int]:
    """Source frame indices of the samples in ``frames``, in order.

    With step = P/R source frames per sample, sample k is frame round(k * P / R) (ties to the
    later frame), in integers; ``_select_expr`` applies the same rule inside ffmpeg.
    """
    if frames.step is None:
        if frames.stop is None:
            yield from itertools.count(frames.first)
        else:
            yield from range(frames.first, frames.stop)
        return
    p, r = frames.step.numerator, frames.step.denominator
    k = _ceil_div((2 * frames.first - 1) * r, 2 * p)  # first sample at or after `first`
    while True:
        index = (2 * k * p + r) // (2 * r)
        if frames.stop is not None and index >= frames.stop:
            return
        yield index
        k += 1


def _select_expr(info: MediaInfo, frames: _Range, *, keep_preroll: bool = False) -> str:
    """ffmpeg ``select`` expression keeping the samples of ``frames`` (and, with
    ``keep_preroll``, every frame before the range too).

    The source frame index is computed from the absolute timestamp (``-copyts``), so it does
    not depend on where the seek landed. Frame n is a sample iff an integer k satisfies
    (2n-1)R <= 2kP < (2n+1)R; the only candidate is k = ceil((2n-1)R / 2P).
    """
    fps = _fps_fraction(info.fps or 0.0)
    index = f"round((t-{info.start_s:.6f})*{fps.numerator}/{fps.denominator})"
    terms = [f"gte(ld(0),{frames.first})"]
    if frames.stop is not None:
        terms.append(f"lt(ld(0),{frames.stop})")
    if frames.step is not None:
        p, r = frames.step.numerator, frames.step.denominator
        terms.append(f"lt(2*{p}*ceil((2*ld(0)-1)*{r}/(2*{p})),(2*ld(0)+1)*{r})")
    keep = "*".join(terms)
    if keep_preroll:
        keep = f"lt(ld(0),{frames.first})+{keep}"
    return f"st(0,{index});{keep}"


def _image_in_range(start_s: float, end_s: float | None) -> bool:
    """An image is one frame at t=0: it belongs to the segment that contains 0."""
    return start_s <= 0 and (end_s is None or end_s > 0)


def _total_frames(info: MediaInfo) -> int:
    return round(Fraction(info.duration_s or 0.0) * _fps_fraction(info.fps or 0.0))


def estimate_sample_count(
    info: MediaInfo, sample_fps: float | None, start_s: float = 0.0, end_s: float | None = None
) -> int:
    """How many frames ``iter_frames`` will yield (exact for CFR video with a true duration)."""
    if info.kind == "image":
        return int(_image_in_range(start_s, end_s))
    frames = _frame_range(info, sample_fps, start_s, end_s)
    total = _total_frames(info)
    stop = total if frames.stop is None else min(frames.stop, total)
    bounded = _Range(first=frames.first, stop=stop, step=frames.step)
    return sum(1 for _ in _sample_indices(bounded))


# ------------------------------------------------------------------- ffmpeg argv


def output_size(info: MediaInfo, max_side: int | None) -> tuple[int, int]:
    """(width, height) of the decoded frames: the source size, or scaled down to fit.

    A frame whose longer side exceeds ``max_side`` is scaled so that side is ``max_side``
    (rounded down to even), keeping the aspect ratio; both sides are then even.
    """
    width, height = info.width, info.height
    if max_side is None or max(width, height) <= max_side:
        return width, height
    if max_side < 2:
        raise ValueError(f"max_side must be >= 2, got {max_side}")
    longer = max_side - max_side % 2
    shorter = max(2, 2 * round(min(width, height) * longer / max(width, height) / 2))
    return (longer, shorter) if width >= height else (shorter, longer)


def _seek_s(info: MediaInfo, frames: _Range, preroll_s: float) -> float:
    """Input seek (relative to the file start) landing 1.5 frames before the range, minus
    ``preroll_s``; 0 means no seek."""
    if math.isinf(preroll_s):
        return 0.0
    fps = _fps_fraction(info.fps or 0.0)
    stream_offset_s = max(0.0, info.start_s - info.container_start_s)
    return max(0.0, stream_offset_s + float((frames.first - Fraction(3, 2)) / fps) - preroll_s)


def build_decode_args(
    info: MediaInfo,
    *,
    sample_fps: float | None,
    start_s: float = 0.0,
    end_s: float | None = None,
    max_side: int | None = None,
    preroll_s: float = 0.0,
    pts_fd: int = 3,
) -> list[str]:
    """The ffmpeg argv that writes the sampled frames of [start_s, end_s) as raw RGB to stdout.

    Video: an input seek (``-ss`` before ``-i``) to 1.5 frames before the range (``preroll_s``
    earlier still; ``inf`` = no seek), ``-t`` to half a frame past its end, and ``-copyts`` so
    timestamps stay absolute. Two outputs share the decoder:

    1. ``pipe:<pts_fd>``: a framecrc line with the exact pts of each frame before the range
       (proof that the seek did not overshoot) and of each sample; the frames are wrapped,
       not copied, so this costs nothing per pixel.
    2. ``pipe:1``: the samples as raw rgb24. ``select`` runs before ``scale``, so only the
       samples are scaled and converted.

    ``-fps_mode passthrough`` stops ffmpeg from duplicating frames to restore a constant
    rate. Needs ffmpeg >= 5.1. Images: one frame, no timestamps output.

    The input is read with the demuxer probing found (``-f``), under the same demuxer and
    protocol allow-lists as the probe: the file cannot switch to another demuxer later.
    """
    args = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"]
    width, height = output_size(info, max_side)
    scaled = (width, height) != (info.width, info.height)
    scale = f",scale={width}:{height}:flags=area" if scaled else ""
    stream = f"0:{info.stream_index}"
    rgb_output = ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    source = [*_RESTRICTED_INPUT, "-f", info.demuxer, "-i", _input_url(info.path)]
    if info.kind == "image":
        _check_range(sample_fps, start_s, end_s)
        # Turned by our own filter (before scaling, which is in displayed sides), never by
        # ffmpeg's autorotation: one rotation whatever the ffmpeg version does.
        upright = _ORIENTATION_FILTERS[info.orientation]
        filters = ",".join(f for f in (upright, scale[1:]) if f)
        args += ["-noautorotate", *source, "-map", stream]
        if filters:
            args += ["-vf", filters]
        return args + ["-frames:v", "1"] + rgb_output

    frames = _frame_range(info, sample_fps, start_s, end_s)
    fps = _fps_fraction(info.fps or 0.0)
    seek_s = _seek_s(info, frames, preroll_s)
    args.append("-copyts")
    if seek_s > 0:
        args += ["-ss", f"{seek_s:.6f}"]
    if frames.stop is not None:
        # ffmpeg measures -t from the first frame it keeps, which is at or after seek_s.
        stream_offset_s = max(0.0, info.start_s - info.container_start_s)
        end_at_s = stream_offset_s + float((frames.stop - Fraction(1, 2)) / fps)
        args += ["-t", f"{max(0.0, end_at_s - seek_s):.6f}"]
    args += source
    passthrough = ["-fps_mode", "passthrough", "-flush_packets", "1"]
    args += ["-map", stream, "-vf", f"select='{_select_expr(info, frames, keep_preroll=True)}'"]
    args += passthrough + ["-enc_time_base", "-1", "-c:v", "wrapped_avframe"]
    args += ["-f", "framecrc", f"pipe:{pts_fd}"]
    args += ["-map", stream, "-vf", f"select='{_select_expr(info, frames)}'{scale}"]
    return args + passthrough + rgb_output


def _input_url(path: Path) -> str:
    # "file:" + absolute path: a name starting with "-" or holding ":" is still a plain file.
    return f"file:{path.absolute()}"


# ------------------------------------------------------------------------ decoding


def iter_frames(
    info: MediaInfo,
    *,
    sample_fps: float | None,
    start_s: float = 0.0,
    end_s: float | None = None,
    max_side: int | None = None,
    timeout_s: float | None = None,
) -> Generator[Frame, None, None]:
    """Stream the sampled frames of [start_s, end_s) (seconds from the stream start).

    Sample k is the source frame nearest to k / sample_fps (ties to the later frame); every
    frame when ``sample_fps`` is None or not below the source rate. A sample is in the
    segment when its timestamp is, so decoding [a, b) then [b, c) yields exactly the frames
    of decoding [a, c). Each frame's index comes from its real pts, read from ffmpeg beside
    the pixels. Memory stays at one frame: frames are read from ffmpeg's stdout as they come.

    Indices and timestamps assume a constant frame rate (what we support): the index is the
    pts rounded to the nominal frame grid and ``timestamp_s`` is index / fps. Variable-frame-
    rate video decodes, but frames may share an index and timestamps are approximate.

    If the seek lands past the segment start (some containers, e.g. MPEG-TS, seek to the
    next keyframe), the decode restarts from further back, up to the start of the file.

    Close the generator (or drop it) to stop early: ffmpeg is terminated, then killed.

    Args:
        timeout_s: wall-clock budget for the whole iteration, including the time the caller
            spends between frames; None for no limit.

    Raises:
        DecodeError: ffmpeg failed, or the stream is truncated or corrupt. Frames before the
            damage have been yielded by then.
        TimeoutError: ``timeout_s`` ran out.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    width, height = output_size(info, max_side)
    if info.kind == "image":
        _check_range(sample_fps, start_s, end_s)
        if _image_in_range(start_s, end_s):
            yield _decode_image(info, max_side, deadline, timeout_s)
        return

    frames = _frame_range(info, sample_fps, start_s, end_s)
    if frames.stop is not None and frames.stop <= frames.first:
        return
    fps = _fps_fraction(info.fps or 0.0)
    stream_start = Fraction(info.start_s)

    def index_of(frame_time: Fraction) -> int:
        return _round_half_away((frame_time - stream_start) * fps)

    for attempt, preroll_s in enumerate(_PREROLL_STEPS_S):

        def args_for(pts_fd: int | None, preroll_s: float = preroll_s) -> list[str]:
            return build_decode_args(
                info,
                sample_fps=sample_fps,
                start_s=start_s,
                end_s=end_s,
                max_side=max_side,
                preroll_s=preroll_s,
                pts_fd=pts_fd if pts_fd is not None else 3,
            )

        run = _FfmpegRun(args_for, info, with_pts=True, deadline=deadline, timeout_s=timeout_s)
        try:
            image = run.read_frame(width, height)
            pts_time = run.next_time()  # the first frame decoded after the seek
            first_seen = None if pts_time is None else index_of(pts_time)
            if first_seen is None:
                run.finish()  # nothing decoded: a failed run is an error, not an overshoot
            if _seek_s(info, frames, preroll_s) > 0 and _overshot(info, frames, first_seen):
                logger.info(
                    "%s: seeking to frame %d landed at frame %s; seeking %g s further back",
                    info.name,
                    frames.first,
                    first_seen,
                    _PREROLL_STEPS_S[attempt + 1],
                )
                continue
            while image is not None:
                while pts_time is not None and index_of(pts_time) < frames.first:
                    pts_time = run.next_time()  # a pre-roll frame: not in the pixel output
                if pts_time is None:
                    run.finish()
                    raise RuntimeError(f"{info.name}: ffmpeg gave a frame without a pts")
                index = index_of(pts_time)
                yield Frame(frame_index=index, timestamp_s=float(index / fps), image=image)
                image = run.read_frame(width, height)
                pts_time = run.next_time() if image is not None else None
            run.finish()
            return
        finally:
            run.close()


# Extra seek-back after a seek overshoots the range; the last step decodes from the start.
_PREROLL_STEPS_S = (0.0, 10.0, 60.0, math.inf)


def _overshot(info: MediaInfo, frames: _Range, first_seen: int | None) -> bool:
    """Whether a seek landed past the range start: the frame before it was never decoded.

    With no frame decoded at all, only a range well inside the stream counts as overshot.
    """
    if first_seen is None:
        return frames.first < _total_frames(info) - 1
    return first_seen >= frames.first


def _decode_image(
    info: MediaInfo, max_side: int | None, deadline: float | None, timeout_s: float | None
) -> Frame:
    width, height = output_size(info, max_side)

    def args_for(_pts_fd: int | None) -> list[str]:
        return build_decode_args(info, sample_fps=None, max_side=max_side)

    run = _FfmpegRun(args_for, info, with_pts=False, deadline=deadline, timeout_s=timeout_s)
    try:
        image = run.read_frame(width, height)
        run.finish()
    finally:
        run.close()
    if image is None:
        raise DecodeError(f"{info.name}: no image could be decoded from the file")
    return Frame(frame_index=0, timestamp_s=0.0, image=image)


class _FfmpegRun:
    """One ffmpeg process: frames on stdout, frame times on a side pipe, stderr kept."""

    def __init__(
        self,
        args_for: Callable[[int | None], list[str]],
        info: MediaInfo,
        *,
        with_pts: bool,
        deadline: float | None,
        timeout_s: float | None,
    ) -> None:
        self.path = info.path
        self.name = info.name
        self.partial = False
        pts_read, pts_write = os.pipe() if with_pts else (None, None)
        args = args_for(pts_write)
        logger.debug("running %s", args)
        try:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                pass_fds=() if pts_write is None else (pts_write,),
            )
        except BaseException:
            if pts_read is not None:
                os.close(pts_read)
            raise
        finally:
            if pts_write is not None:
                os.close(pts_write)  # ffmpeg holds the only write end: EOF when it exits
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.stdout: IO[bytes] = self.proc.stdout
        _grow_pipe(self.stdout)
        self.times = None if pts_read is None else _FrameTimes(pts_read)
        self.stderr = _StderrTail(self.proc.stderr)
        self.watchdog = _Watchdog(
            self.proc, deadline, f"{self.name}: decoding took longer than {timeout_s or 0:g} s"
        )

    def read_frame(self, width: int, height: int) -> np.ndarray | None:
        """The next (H, W, 3) frame, or None at the end of the stream."""
        self.watchdog.check()
        image = np.empty((height, width, 3), np.uint8)
        got = _read_into(self.stdout, image.data.cast("B"))
        if got == image.nbytes:
            return image
        self.partial = got > 0
        return None

    def next_time(self) -> Fraction | None:
        """Absolute time of the next frame ffmpeg reported, or None when it reports no more."""
        return None if self.times is None else self.times.next()

    def finish(self) -> None:
        """Wait for ffmpeg to exit; raise if it failed, timed out or lost data."""
        try:
            rc = self.proc.wait(timeout=self.watchdog.remaining())
        except subprocess.TimeoutExpired:
            self.watchdog.expire()
            rc = -1
        self.stderr.join()
        self.watchdog.check()
        _raise_on_failure(self.path, self.name, rc, self.partial, list(self.stderr.lines))

    def close(self) -> None:
        self.watchdog.cancel()
        _stop(self.proc)
        self.stderr.close()
        if self.times is not None:
            self.times.close()


def _raise_if_killed(name: str, program: str, rc: int) -> None:
    """A negative status is the signal that ended the process (Popen's convention)."""
    if rc < 0:
        try:
            signal_name = signal.Signals(-rc).name
        except ValueError:
            signal_name = f"signal {-rc}"
        raise DecoderKilled(f"{name}: {program} was killed by {signal_name}")


def _raise_on_failure(
    path: Path, name: str, rc: int, partial: bool, stderr_lines: list[str]
) -> None:
    _raise_if_killed(name, "ffmpeg", rc)
    if rc != 0:
        reason = _short_reason(stderr_lines, path, name) or f"ffmpeg exit status {rc}"
        raise DecodeError(f"{name}: could not be decoded ({reason})")
    lost = [line for line in stderr_lines if any(m in line.lower() for m in _DATA_LOSS_MARKERS)]
    if partial or lost:
        reason = _short_reason(lost, path, name) or "the stream ended in the middle of a frame"
        raise DecodeError(f"{name}: the file is truncated or corrupt ({reason})")
    for line in stderr_lines:
        logger.warning(
            "ffmpeg reported while decoding %s: %s", name, _clean_line(line, path, name)
        )


def _read_into(stream: IO[bytes], buffer: memoryview) -> int:
    """Fill ``buffer`` from ``stream``; fewer bytes only at end of stream."""
    filled = 0
    while filled < len(buffer):
        got = stream.readinto(buffer[filled:])  # type: ignore[attr-defined]
        if not got:
            break
        filled += got
    return filled


def _grow_pipe(stream: IO[bytes]) -> None:
    with contextlib.suppress(ImportError, AttributeError, OSError):  # Linux only; optional
        import fcntl

        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_SIZE)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill, ffmpeg; always reap it."""
    if proc.stdout is not None:
        # Closing our end first makes an ffmpeg blocked on a full pipe fail at once (EPIPE).
        proc.stdout.close()
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            logger.warning("ffmpeg (pid %d) ignored SIGTERM; killing it", proc.pid)
            proc.kill()
            proc.wait()


class _Watchdog:
    """Stops the process when the wall-clock deadline passes."""

    def __init__(self, proc: subprocess.Popen[bytes], deadline: float | None, message: str) -> None:
        self._proc = proc
        self._deadline = deadline
        self._message = message
        self._expired = threading.Event()
        self._timer: threading.Timer | None = None
        if deadline is not None:
            self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self.expire)
            self._timer.daemon = True
            self._timer.start()

    def expire(self) -> None:
        self._expired.set()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    def remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def check(self) -> None:
        if self._expired.is_set():
            raise TimeoutError(self._message)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class _FrameTimes:
    """Reads ffmpeg's framecrc lines in a thread: the absolute time of each reported frame."""

    def __init__(self, fd: int) -> None:
        self._stream = os.fdopen(fd, "rb")
        self._times: queue.SimpleQueue[Fraction | None] = queue.SimpleQueue()
        self._ended = False
        self._thread = threading.Thread(target=self._read, name="ffmpeg-pts", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        time_base: Fraction | None = None
        try:
            for raw in self._stream:
                line = raw.decode("ascii", "replace").strip()
                if line.startswith("#tb 0:"):
                    time_base = Fraction(line.split(":", 1)[1].strip())
                elif line and not line.startswith("#") and time_base is not None:
                    # stream_index, dts, pts, duration, size, checksum
                    self._times.put(int(line.split(",")[2]) * time_base)
        except (OSError, ValueError) as exc:
            logger.debug("stopped reading frame times: %s", exc)
        finally:
            self._times.put(None)

    def next(self) -> Fraction | None:
        if self._ended:
            return None
        item = self._times.get()
        self._ended = item is None
        return item

    def close(self) -> None:
        self._thread.join(timeout=_STOP_GRACE_S)
        if not self._thread.is_alive():
            self._stream.close()


class _StderrTail:
    """Drains a process's stderr in a thread, keeping the last lines for error messages."""

    def __init__(self, stream: IO[bytes], keep: int = 40) -> None:
        self.lines: deque[str] = deque(maxlen=keep)
        self._stream = stream
        self._thread = threading.Thread(
            target=self._drain, args=(stream,), name="ffmpeg-stderr", daemon=True
        )
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        with contextlib.suppress(ValueError, OSError):
            for raw in stream:
                line = raw.decode("utf-8", "replace").strip()
                if line:
                    self.lines.append(line)
                    logger.debug("ffmpeg: %s", line)

    def join(self) -> None:
        self._thread.join(timeout=_STOP_GRACE_S)

    def close(self) -> None:
        self.join()
        if not self._thread.is_alive():
            self._stream.close()


# ------------------------------------------------------------------------- helpers


def _run(args: list[str], timeout_s: float, *, what: str) -> tuple[int, str, str]:
    """Run a short command to completion: (exit status, stdout, stderr)."""
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.communicate(timeout=_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise TimeoutError(f"{what} took longer than {timeout_s:g} s") from None
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _clean_line(line: str, path: Path, name: str) -> str:
    """An ffmpeg log line without its ``[demuxer @ 0x...]`` prefix, any server path or
    stored name replaced by ``name``."""
    line = _LOG_PREFIX.sub("", line.strip())
    for spelled in sorted(
        {_input_url(path), str(path.absolute()), str(path), str(path.resolve()), path.name},
        key=len,
    )[::-1]:
        line = line.replace(spelled, name)
    return line


def _short_reason(lines: list[str], path: Path, name: str, limit: int = 3) -> str:
    """A few distinct, path-free ffmpeg messages joined for a user-facing error."""
    reasons: list[str] = []
    for line in lines:
        cleaned = _clean_line(line, path, name)
        if cleaned.startswith(f"{name}: "):
            cleaned = cleaned[len(name) + 2 :]
        if cleaned and cleaned not in reasons and cleaned != "Conversion failed!":
            reasons.append(cleaned)
    text = "; ".join(reasons[:limit])
    return text if len(text) <= 200 else text[:197] + "..."
