"""What planning a job from its frames costs at the API door, against the probe it adds to.

Usage: python scripts/bench_planning.py [--minutes 60] [--fps 25] [--repeat 3] [--clip PATH]

Without --clip, generates a 320x180 H.264 MP4 of ``--minutes`` at ``--fps`` (a test pattern,
one keyframe a second). Times ``probe`` (what the API already ran on every upload) and
``plan_work`` (the packet listing added by the work limits), best of ``--repeat``, and prints
both and their ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _repo  # noqa: F401  (puts the repository root on sys.path)

from worker.pipeline.config import AnalysisSettings
from worker.pipeline.decode import probe
from worker.planning import WorkLimits, plan_work


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clip", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-planning-") as folder:
        clip = args.clip
        if clip is None:
            clip = Path(folder) / "long.mp4"
            subprocess.run(
                ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi",
                 "-i", f"testsrc2=size=320x180:rate={args.fps}:duration={args.minutes * 60}",
                 "-c:v", "libx264", "-preset", "ultrafast", "-g", str(args.fps), str(clip)],
                check=True,
            )
        info = probe(clip)
        settings = AnalysisSettings()
        limits = WorkLimits(segment_seconds=30, max_duration_s=86_400, max_segments=5000)
        plan = plan_work(info, settings, limits)
        probe_s = best_of(args.repeat, lambda: probe(clip))
        plan_s = best_of(args.repeat, lambda: plan_work(info, settings, limits))
        size = clip.stat().st_size
    print(f"{clip.name}: {info.duration_s:.0f} s at {info.fps:g} fps, {size} bytes")
    print(f"plan: {len(plan.segments)} segments, {plan.samples} frames to analyse")
    print(f"probe {probe_s:.3f} s, plan_work {plan_s:.3f} s, ratio {plan_s / probe_s:.1f}x")


if __name__ == "__main__":
    main()
