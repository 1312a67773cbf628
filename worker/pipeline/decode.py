"""Decode a probed file into sampled RGB frames: the decoding stage's public module.

The stage is split by concern; import its names from here:

- ``media``: what a file is (``MediaInfo``, ``Frame``, the accepted formats);
- ``probe``: ffprobe, and what is refused before decoding;
- ``sampling``: which frames a job analyses (indices, segment bounds, the sample rule);
- ``ffmpeg_args``: every ffprobe/ffmpeg argument list, with the input restrictions;
- ``ffmpeg_process``: the process driver and its errors;
- this module: ``iter_frames``, which runs the decode and gives each frame its index.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Generator
from fractions import Fraction

from worker.pipeline.errors import DecodeError
from worker.pipeline.ffmpeg_args import (
    build_decode_args,
    build_packet_count_args,
    build_probe_args,
    input_seek_s,
    output_size,
)
from worker.pipeline.ffmpeg_process import FfmpegRun
from worker.pipeline.media import ACCEPTED_DEMUXERS, ACCEPTED_FORMATS_TEXT, Frame, MediaInfo
from worker.pipeline.probe import MAX_PIXELS, MAX_SIDE_PX, PROBE_TIMEOUT_S, probe
from worker.pipeline.sampling import (
    FrameRange,
    check_range,
    estimate_sample_count,
    fps_fraction,
    frame_range,
    image_in_range,
    round_half_away,
    total_frames,
)

__all__ = [
    "ACCEPTED_DEMUXERS",
    "ACCEPTED_FORMATS_TEXT",
    "MAX_PIXELS",
    "MAX_SIDE_PX",
    "PROBE_TIMEOUT_S",
    "Frame",
    "MediaInfo",
    "build_decode_args",
    "build_packet_count_args",
    "build_probe_args",
    "estimate_sample_count",
    "iter_frames",
    "output_size",
    "probe",
]

logger = logging.getLogger(__name__)


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
        check_range(sample_fps, start_s, end_s)
        if image_in_range(start_s, end_s):
            yield _decode_image(info, max_side, deadline, timeout_s)
        return

    frames = frame_range(info, sample_fps, start_s, end_s)
    if frames.stop is not None and frames.stop <= frames.first:
        return
    fps = fps_fraction(info.fps or 0.0)
    stream_start = Fraction(info.start_s)

    def index_of(frame_time: Fraction) -> int:
        return round_half_away((frame_time - stream_start) * fps)

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

        run = FfmpegRun(args_for, info, with_pts=True, deadline=deadline, timeout_s=timeout_s)
        try:
            image = run.read_frame(width, height)
            pts_time = run.next_time()  # the first frame decoded after the seek
            first_seen = None if pts_time is None else index_of(pts_time)
            if first_seen is None:
                run.finish()  # nothing decoded: a failed run is an error, not an overshoot
            if input_seek_s(info, frames, preroll_s) > 0 and _overshot(info, frames, first_seen):
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


def _overshot(info: MediaInfo, frames: FrameRange, first_seen: int | None) -> bool:
    """Whether a seek landed past the range start: the frame before it was never decoded.

    With no frame decoded at all, only a range well inside the stream counts as overshot.
    """
    if first_seen is None:
        return frames.first < total_frames(info) - 1
    return first_seen >= frames.first


def _decode_image(
    info: MediaInfo, max_side: int | None, deadline: float | None, timeout_s: float | None
) -> Frame:
    width, height = output_size(info, max_side)

    def args_for(_pts_fd: int | None) -> list[str]:
        return build_decode_args(info, sample_fps=None, max_side=max_side)

    run = FfmpegRun(args_for, info, with_pts=False, deadline=deadline, timeout_s=timeout_s)
    try:
        image = run.read_frame(width, height)
        run.finish()
    finally:
        run.close()
    if image is None:
        raise DecodeError(f"{info.name}: no image could be decoded from the file")
    return Frame(frame_index=0, timestamp_s=0.0, image=image)
