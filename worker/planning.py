"""How much work a job is: its segments planned from the frames its input really holds,
and the limits one upload's work must stay within (torch-free: the API checks them too)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from maskwatch.settings import Settings
from worker.jobs import Segment
from worker.pipeline.config import AnalysisSettings
from worker.pipeline.decode import MediaInfo, estimate_sample_count
from worker.pipeline.errors import InputError
from worker.pipeline.timeline import read_timeline

# A last part shorter than this share of segment_seconds is merged into the one before it.
MERGE_FRACTION = 0.25
# Frames per second of footage a stream may hold at most, whatever frame rate it claims:
# bounds the demuxing and decoding one job may cause (no camera records faster).
MAX_SOURCE_FPS = 240


def plan_ranges(duration_s: float | None, segment_seconds: float) -> list[Segment]:
    """Split [0, duration_s) into consecutive segments of ``segment_seconds``.

    The last segment is open-ended (``end_s`` None), since a probed duration is an estimate
    and no frame may fall off the end; an unknown duration (an image) gives one segment.
    """
    if segment_seconds <= 0:
        raise ValueError("segment_seconds must be > 0")
    if duration_s is None or duration_s <= segment_seconds:
        return [Segment(0.0, None)]
    count = max(1, math.ceil(duration_s / segment_seconds - MERGE_FRACTION))
    bounds = [round(i * segment_seconds, 6) for i in range(count)]
    return [
        Segment(start, bounds[i + 1] if i + 1 < count else None) for i, start in enumerate(bounds)
    ]


@dataclass(frozen=True)
class WorkLimits:
    """How a job is split, and the most work one job may cause (see docs/deployment.md)."""

    segment_seconds: float
    max_duration_s: float
    max_segments: int

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkLimits:
        return cls(
            segment_seconds=settings.segment_seconds,
            max_duration_s=settings.max_job_duration_s,
            max_segments=settings.max_job_segments,
        )


@dataclass(frozen=True)
class WorkPlan:
    """A job's segments and the frames it will analyse (its ``frames_total``)."""

    segments: list[Segment]
    samples: int


def plan_work(
    info: MediaInfo, settings: AnalysisSettings, limits: WorkLimits, name: str | None = None
) -> WorkPlan:
    """Plan a job from the frames its input really holds; refuse it over the limits.

    A video's segments are packed from its packet timestamps (``read_timeline``): each
    holds about ``segment_seconds`` of samples, and a gap between timestamps, however long,
    adds no segment and no expected frame. A stream without timestamps is planned from its
    probed duration, which ``probe`` derived from its frame count.

    Args:
        name: the file's name for errors (the user's own; ``info.name`` by default).

    Raises:
        InputError: the job would analyse more than ``max_duration_s`` of footage (samples
            over the analysed rate), hold more than ``max_duration_s * MAX_SOURCE_FPS``
            frames, or split into more than ``max_segments`` segments.
    """
    name = name or info.name
    if info.kind == "image":
        return WorkPlan([Segment(0.0, None)], 1)
    assert info.fps is not None
    rate = min(settings.sample_fps, info.fps)  # frames analysed per second of footage
    max_samples = math.floor(limits.max_duration_s * rate)
    timeline = read_timeline(
        replace(info, display_name=name),
        sample_fps=settings.sample_fps,
        bucket_s=limits.segment_seconds,
        max_frames=math.ceil(limits.max_duration_s * MAX_SOURCE_FPS),
        max_samples=max_samples,
    )
    if timeline is None:
        ranges = plan_ranges(info.duration_s, limits.segment_seconds)
        samples = estimate_sample_count(info, settings.sample_fps)
    else:
        budget = limits.segment_seconds * rate
        ranges = pack_buckets(timeline.samples_per_bucket, limits.segment_seconds, budget)
        samples = timeline.samples
    if samples > max_samples:
        found = (
            f"more than {_hours(limits.max_duration_s)}"
            if timeline is not None and timeline.stopped_early
            else f"{_hours(samples / rate)} ({samples} frames at {rate:g} per second)"
        )
        raise InputError(
            f"{name}: {found} of footage to analyse; a job may analyse at most "
            f"{_hours(limits.max_duration_s)}: split the file into shorter ones"
        )
    if len(ranges) > limits.max_segments:
        raise InputError(
            f"{name}: its frames are spread over {len(ranges)} parts of "
            f"{limits.segment_seconds:g} s; a job may have at most {limits.max_segments}: "
            "split the file into shorter ones"
        )
    return WorkPlan(ranges, samples)


def pack_buckets(
    samples_per_bucket: dict[int, int], bucket_s: float, budget: float
) -> list[Segment]:
    """Consecutive segments over [0, end) that start on bucket bounds and skip empty time.

    Buckets holding samples are taken in order into the current segment while it stays
    within ``budget`` samples; a bucket that would overflow it starts the next one. Empty
    buckets start none, so a gap is covered by the segment before it at no cost (decoding
    reads packets, and a gap has none). Dense footage gives one segment per bucket, as
    ``plan_ranges`` does. The first segment starts at 0 and the last is open-ended, so no
    frame falls between or after them.
    """
    starts: list[int] = []
    loads: list[int] = []
    for bucket in sorted(samples_per_bucket):
        count = samples_per_bucket[bucket]
        if starts and loads[-1] + count <= budget:
            loads[-1] += count
        else:
            starts.append(bucket)
            loads.append(count)
    if len(starts) > 1 and loads[-1] < MERGE_FRACTION * budget:
        starts.pop()  # a short tail joins the segment before it
    if not starts:
        return [Segment(0.0, None)]
    bounds = [0.0] + [round(bucket * bucket_s, 6) for bucket in starts[1:]]
    return [
        Segment(start, bounds[i + 1] if i + 1 < len(bounds) else None)
        for i, start in enumerate(bounds)
    ]


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.2g} s"
