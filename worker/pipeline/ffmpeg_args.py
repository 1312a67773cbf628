"""The argument lists of every ffprobe and ffmpeg run: pure functions returning list[str].

One home for the input restrictions: every builder reads the file through
``_RESTRICTED_INPUT`` (the file protocol and ``ACCEPTED_DEMUXERS`` only), and every run
after the probe names the probed demuxer with ``-f``, so no input can make ffmpeg read
anything but the uploaded file.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

from worker.pipeline.media import ACCEPTED_DEMUXERS, MediaInfo
from worker.pipeline.sampling import FrameRange, check_range, fps_fraction, frame_range

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
# Input options for every ffprobe and ffmpeg run: only ACCEPTED_DEMUXERS, and only
# the file protocol, so that no input can make ffmpeg read anything but the uploaded file.
_RESTRICTED_INPUT = [
    "-protocol_whitelist", "file", "-format_whitelist", ",".join(ACCEPTED_DEMUXERS)
]  # fmt: skip


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
        input_url(path),
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
        input_url(path),
    ]


def build_timeline_args(info: MediaInfo) -> list[str]:
    """The ffprobe argv listing the analysed stream's packet timestamps (demux only)."""
    return [
        "ffprobe",
        "-v",
        "error",
        *_RESTRICTED_INPUT,
        "-f",
        info.demuxer,
        "-select_streams",
        str(info.stream_index),
        "-show_entries",
        "packet=pts_time,dts_time",
        "-of",
        "csv=p=0",
        input_url(info.path),
    ]


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


def input_seek_s(info: MediaInfo, frames: FrameRange, preroll_s: float) -> float:
    """Input seek (relative to the file start) landing 1.5 frames before the range, minus
    ``preroll_s``; 0 means no seek."""
    if math.isinf(preroll_s):
        return 0.0
    fps = fps_fraction(info.fps or 0.0)
    stream_offset_s = max(0.0, info.start_s - info.container_start_s)
    return max(0.0, stream_offset_s + float((frames.first - Fraction(3, 2)) / fps) - preroll_s)


def _select_expr(info: MediaInfo, frames: FrameRange, *, keep_preroll: bool = False) -> str:
    """ffmpeg ``select`` expression keeping the samples of ``frames`` (and, with
    ``keep_preroll``, every frame before the range too).

    The source frame index is computed from the absolute timestamp (``-copyts``), so it does
    not depend on where the seek landed. Frame n is a sample iff an integer k satisfies
    (2n-1)R <= 2kP < (2n+1)R; the only candidate is k = ceil((2n-1)R / 2P).
    """
    fps = fps_fraction(info.fps or 0.0)
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
    source = [*_RESTRICTED_INPUT, "-f", info.demuxer, "-i", input_url(info.path)]
    if info.kind == "image":
        check_range(sample_fps, start_s, end_s)
        # Turned by our own filter (before scaling, which is in displayed sides), never by
        # ffmpeg's autorotation: one rotation whatever the ffmpeg version does.
        upright = _ORIENTATION_FILTERS[info.orientation]
        filters = ",".join(f for f in (upright, scale[1:]) if f)
        args += ["-noautorotate", *source, "-map", stream]
        if filters:
            args += ["-vf", filters]
        return args + ["-frames:v", "1"] + rgb_output

    frames = frame_range(info, sample_fps, start_s, end_s)
    fps = fps_fraction(info.fps or 0.0)
    seek_s = input_seek_s(info, frames, preroll_s)
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


def input_url(path: Path) -> str:
    # "file:" + absolute path: a name starting with "-" or holding ":" is still a plain file.
    return f"file:{path.absolute()}"
