"""What a video really holds: where its frames lie in time, read by demuxing (no decoding).

A container's duration is a claim: a two-frame file whose second frame is stamped
1,000,000 s after the first "lasts" 11 days. Jobs are planned from the frames present
instead, so a gap costs nothing and the work a file causes is bounded by what it holds.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field

from worker.pipeline.errors import DecodeError, InputError
from worker.pipeline.ffmpeg_args import build_timeline_args
from worker.pipeline.ffmpeg_process import raise_if_killed, short_reason
from worker.pipeline.media import MediaInfo
from worker.pipeline.sampling import (
    BOUND_TOLERANCE_FRAMES,
    fps_fraction,
    frame_range,
    is_sample,
    nearest_frame,
)

TIMELINE_TIMEOUT_S = 120.0  # demuxing a 2 GB file takes seconds; this is a runaway guard


@dataclass
class Timeline:
    """The frames of a video stream, counted per stretch of ``bucket_s`` seconds.

    Bucket ``b`` covers [b * bucket_s, (b + 1) * bucket_s) from the stream start; only
    buckets holding a sample appear in ``samples_per_bucket``. Frames are indexed as
    decoding indexes them (pts on the nominal frame grid), and a sample is a frame the
    job's sample rate picks (decode's rule), so ``samples`` is what analysis will read.
    """

    bucket_s: float
    frames: int = 0  # frames (packets) at or after the stream start
    samples: int = 0  # of those, the ones analysed
    samples_per_bucket: dict[int, int] = field(default_factory=dict)
    stopped_early: bool = False  # reading stopped at max_samples: there are more


class TooManyFrames(InputError):
    """The stream holds more frames than a job may read."""


def read_timeline(
    info: MediaInfo,
    *,
    sample_fps: float,
    bucket_s: float,
    max_frames: int,
    max_samples: int | None = None,
    timeout_s: float = TIMELINE_TIMEOUT_S,
) -> Timeline | None:
    """Count a video's frames and samples per bucket from its packet timestamps.

    Memory stays small whatever the file: one counter per bucket that holds a sample.

    Args:
        sample_fps: the job's sample rate.
        bucket_s: the bucket length (the planner's segment length).
        max_frames: reading stops, and TooManyFrames is raised, past this many frames.
        max_samples: reading stops past this many samples (``stopped_early`` is set): the
            caller refuses the file, and need not read the rest to do so.

    Returns:
        None when the stream carries no timestamps at all (raw streams): the caller falls
        back to the probed duration, which ``probe`` then derived from the packet count.

    Raises:
        TooManyFrames: more than ``max_frames`` frames.
        DecodeError: ffprobe failed on the file.
        DecoderKilled: ffprobe was killed by a signal (a fault, not the file's).
        TimeoutError: ffprobe took longer than ``timeout_s``.
    """
    if info.kind != "video" or info.fps is None:
        raise ValueError(f"{info.name}: only a video has a timeline")
    if bucket_s <= 0:
        raise ValueError("bucket_s must be > 0")
    # Floats, not Fractions, per packet: ffprobe prints times to the microsecond, far finer
    # than a frame, and exact rationals cost ~40 us a packet (minutes for a day of video).
    fps = float(fps_fraction(info.fps))
    step = frame_range(info, sample_fps, 0.0, None).step
    frames_per_bucket = fps * bucket_s
    timeline = Timeline(bucket_s=bucket_s)
    stamped = False
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            build_timeline_args(info),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            proc.kill()

        timer = threading.Timer(timeout_s, expire)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                time_text = _packet_time(line)
                if time_text is None:
                    continue
                stamped = True
                index = nearest_frame((float(time_text) - info.start_s) * fps)
                if index < 0:
                    continue  # before the stream start: decoding never yields it either
                timeline.frames += 1
                if timeline.frames > max_frames:
                    raise TooManyFrames(
                        f"{info.name}: holds more than {max_frames} frames, more "
                        "than a job may analyse; split it into shorter files"
                    )
                if step is not None and not is_sample(index, step):
                    continue
                timeline.samples += 1
                if max_samples is not None and timeline.samples > max_samples:
                    timeline.stopped_early = True
                    break
                bucket = math.floor((index + BOUND_TOLERANCE_FRAMES) / frames_per_bucket)
                counts = timeline.samples_per_bucket
                counts[bucket] = counts.get(bucket, 0) + 1
            else:
                proc.wait()  # read to the end: let ffprobe exit with its own status
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()  # stopped early, or an error: the rest is not wanted
            with contextlib.suppress(OSError):
                proc.stdout.close()  # type: ignore[union-attr]
            proc.wait()
        if expired.is_set():
            raise TimeoutError(f"{info.name}: listing frames took over {timeout_s:g} s")
        if not timeline.stopped_early:
            raise_if_killed(info.name, "ffprobe", proc.returncode)
        if proc.returncode != 0 and not timeline.stopped_early:
            stderr.seek(0)
            lines = stderr.read().decode("utf-8", "replace").splitlines()
            reason = short_reason(lines, info.path, info.name)
            raise DecodeError(f"{info.name}: not a readable video file ({reason})")
    return timeline if stamped else None


def _packet_time(line: str) -> str | None:
    """The packet's presentation time (its decode time when it has none), or None."""
    for text in line.strip().split(",")[:2]:
        if text and text != "N/A":
            return text
    return None
