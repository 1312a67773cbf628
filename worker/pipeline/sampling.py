"""Which source frames a job analyses: frame indices, segment bounds and the sample rule.

Pure arithmetic on the probed frame rate, in exact fractions, shared by the decoder (which
frames it yields), the ffmpeg graph (which frames ffmpeg keeps) and the timeline (which
frames segment planning counts), so that the three agree frame for frame.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

from worker.pipeline.media import MediaInfo

_FPS_MAX_DENOMINATOR = 10_000  # recovers 30000/1001 and friends from a float
BOUND_TOLERANCE_FRAMES = 1e-6  # a segment bound this close to a frame's time includes it


@dataclass(frozen=True)
class FrameRange:
    """Source frame indices [first, stop) of a segment and the sampling step."""

    first: int
    stop: int | None  # exclusive; None = to the end of the stream
    step: Fraction | None  # source frames per sample (> 1); None = every frame


def fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(_FPS_MAX_DENOMINATOR)


def round_half_away(value: Fraction) -> int:
    """Round like ffmpeg's ``round()`` (half away from zero), exactly."""
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


def _first_frame_at_or_after(time_s: float, fps: Fraction) -> int:
    position = Fraction(time_s) * fps
    nearest = round(position)
    if abs(position - nearest) <= BOUND_TOLERANCE_FRAMES:
        return int(nearest)
    return math.ceil(position)


def frame_range(
    info: MediaInfo, sample_fps: float | None, start_s: float, end_s: float | None
) -> FrameRange:
    if info.fps is None:
        raise ValueError(f"{info.name}: a video needs a frame rate")
    check_range(sample_fps, start_s, end_s)
    fps = fps_fraction(info.fps)
    first = _first_frame_at_or_after(start_s, fps)
    stop = None if end_s is None else _first_frame_at_or_after(end_s, fps)
    step = None
    if sample_fps is not None:
        step = fps / Fraction(sample_fps).limit_denominator(_FPS_MAX_DENOMINATOR)
        if step <= 1:
            step = None
    return FrameRange(first=first, stop=stop, step=step)


def check_range(sample_fps: float | None, start_s: float, end_s: float | None) -> None:
    if sample_fps is not None and not sample_fps > 0:
        raise ValueError(f"sample_fps must be positive, got {sample_fps}")
    if not start_s >= 0:
        raise ValueError(f"start_s must be >= 0, got {start_s}")
    if end_s is not None and not end_s >= start_s:
        raise ValueError(f"end_s must be >= start_s, got [{start_s}, {end_s})")


def _ceil_div(numerator: int, denominator: int) -> int:
    return -((-numerator) // denominator)


def sample_indices(frames: FrameRange) -> Iterator[int]:
    """Source frame indices of the samples in ``frames``, in order.

    With step = P/R source frames per sample, sample k is frame round(k * P / R) (ties to the
    later frame), in integers; ``is_sample`` tests one frame against the same rule, and
    ``ffmpeg_args`` has ffmpeg apply it.
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


def image_in_range(start_s: float, end_s: float | None) -> bool:
    """An image is one frame at t=0: it belongs to the segment that contains 0."""
    return start_s <= 0 and (end_s is None or end_s > 0)


def total_frames(info: MediaInfo) -> int:
    return round(Fraction(info.duration_s or 0.0) * fps_fraction(info.fps or 0.0))


def estimate_sample_count(
    info: MediaInfo, sample_fps: float | None, start_s: float = 0.0, end_s: float | None = None
) -> int:
    """How many frames ``iter_frames`` will yield (exact for CFR video with a true duration)."""
    if info.kind == "image":
        return int(image_in_range(start_s, end_s))
    frames = frame_range(info, sample_fps, start_s, end_s)
    total = total_frames(info)
    stop = total if frames.stop is None else min(frames.stop, total)
    bounded = FrameRange(first=frames.first, stop=stop, step=frames.step)
    return sum(1 for _ in sample_indices(bounded))


def is_sample(index: int, step: Fraction) -> bool:
    """Whether frame ``index`` is a sample at ``step`` source frames per sample.

    The rule of ``sample_indices``: frame n is a sample iff an integer k satisfies
    (2n-1)R <= 2kP < (2n+1)R, where step = P/R; the only candidate is k = ceil((2n-1)R / 2P).
    """
    p, r = step.numerator, step.denominator
    k = _ceil_div((2 * index - 1) * r, 2 * p)
    return 2 * k * p < (2 * index + 1) * r


def nearest_frame(position: float) -> int:
    """The frame index nearest ``position`` (in frames), halves away from zero as
    ``round_half_away`` rounds them; floats for speed where a timestamp is already a float."""
    if position >= 0:
        return math.floor(position + 0.5)
    return -math.floor(0.5 - position)
