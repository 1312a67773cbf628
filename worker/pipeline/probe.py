"""Probe a file with ffprobe: what it holds, and whether MaskWatch accepts it.

Stills are recognised by their first bytes (never by name) and their EXIF orientation is
read here; ``probe`` refuses what cannot be analysed with an error naming the user's file.
"""

from __future__ import annotations

import json
import logging
import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

from worker.pipeline.errors import DecodeError, InputError, UnsupportedMediaError
from worker.pipeline.ffmpeg_args import build_packet_count_args, build_probe_args
from worker.pipeline.ffmpeg_process import raise_if_killed, run_command, short_reason
from worker.pipeline.media import ACCEPTED_DEMUXERS, ACCEPTED_FORMATS_TEXT, MediaInfo

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 30.0
MAX_SIDE_PX = 8192  # longest accepted width or height
MAX_PIXELS = 40_000_000  # largest accepted frame area
_IMAGE_CODECS = frozenset(
    {"mjpeg", "png", "bmp", "webp", "tiff", "gif", "jpeg2000", "jpegls", "ppm", "pgm", "pam", "qoi"}
)
_INVALID_SIZE = re.compile(r"Picture size (?P<width>\d+)x(?P<height>\d+) is invalid")
_REFUSED_FORMAT = re.compile(r"^\[(?P<demuxer>[\w-]+) @ ?0x[0-9a-f]+\] Format not on whitelist")
_STILL_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg_pipe"),
    (b"\x89PNG\r\n\x1a\n", "png_pipe"),
    (b"II*\x00", "tiff_pipe"),
    (b"MM\x00*", "tiff_pipe"),
    (b"BM", "bmp_pipe"),
)
_EXIF_ORIENTATION = 0x0112
_PILLOW_FORMATS = {"jpeg_pipe": "JPEG", "png_pipe": "PNG", "webp_pipe": "WEBP", "tiff_pipe": "TIFF"}


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
    rc, out, err = run_command(probe_args, PROBE_TIMEOUT_S, what=f"{name}: probing")
    raise_if_killed(name, "ffprobe", rc)
    if rc != 0:
        for line in err.splitlines():
            refused = _REFUSED_FORMAT.match(line)
            if refused:
                raise UnsupportedMediaError(_not_accepted(name, refused["demuxer"]))
        reason = short_reason(err.splitlines(), path, name)
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
    rc, out, err = run_command(
        build_packet_count_args(path, demuxer, stream_index),
        PROBE_TIMEOUT_S,
        what=f"{name}: probing",
    )
    raise_if_killed(name, "ffprobe", rc)
    if rc != 0:
        reason = short_reason(err.splitlines(), path, name)
        raise DecodeError(f"{name}: not a readable video file ({reason})")
    digits = out.strip().split("\n")[0].strip(" ,")
    return int(digits) if digits.isdigit() else 0
