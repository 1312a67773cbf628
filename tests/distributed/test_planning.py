"""Planning a job from the frames its input really holds, and the limits on one job's work."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ml.footage import make_composition_video
from tests.fixtures.timestamps import make_sparse_video
from worker.jobs import Segment
from worker.pipeline.config import AnalysisSettings
from worker.pipeline.decode import estimate_sample_count, probe
from worker.pipeline.errors import InputError
from worker.pipeline.timeline import read_timeline
from worker.planning import WorkLimits, pack_buckets, plan_ranges, plan_work

DAY = WorkLimits(segment_seconds=30, max_duration_s=86_400, max_segments=5000)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("planning")


@pytest.mark.parametrize(
    ("samples_per_bucket", "budget", "expected"),
    [
        ({}, 10, [(0.0, None)]),
        ({0: 10}, 10, [(0.0, None)]),
        # dense footage: one segment per bucket, as plan_ranges cuts it
        ({0: 10, 1: 10, 2: 10}, 10, [(0.0, 4.0), (4.0, 8.0), (8.0, None)]),
        ({0: 10, 1: 10, 2: 1}, 10, [(0.0, 4.0), (4.0, None)]),  # a short tail joins
        # two frames a day apart: one segment, its gap costs nothing
        ({0: 1, 21_600: 1}, 10, [(0.0, None)]),
        # sparse frames are packed up to the budget; empty time starts no segment
        ({0: 4, 100: 4, 200: 4, 300: 4}, 10, [(0.0, 800.0), (800.0, None)]),
        ({3: 10, 9: 10}, 10, [(0.0, 36.0), (36.0, None)]),  # the first starts at 0
    ],
)
def test_pack_buckets(
    samples_per_bucket: dict[int, int],
    budget: float,
    expected: list[tuple[float, float | None]],
) -> None:
    assert pack_buckets(samples_per_bucket, 4.0, budget) == [Segment(a, b) for a, b in expected]


def test_a_dense_clip_is_planned_as_its_duration_says(folder: Path) -> None:
    clip = make_composition_video(folder / "dense.mp4", [(1, 1)] * 7)  # 14 s at 10 fps
    info = probe(clip)
    limits = WorkLimits(segment_seconds=4, max_duration_s=86_400, max_segments=5000)
    plan = plan_work(info, AnalysisSettings(sample_fps=2.0), limits)
    assert plan.segments == plan_ranges(info.duration_s, 4)
    assert plan.samples == estimate_sample_count(info, 2.0) == 28


def test_a_two_frame_file_claiming_a_million_seconds_is_a_tiny_job(folder: Path) -> None:
    # The upload of issue 16: before, 33,334 segments and 5,000,001 expected frames.
    clip = make_sparse_video(folder / "gap.mkv", [0.0, 1_000_000.0])
    info = probe(clip)
    assert info.duration_s is not None and info.duration_s > 999_999  # what the file claims
    assert clip.stat().st_size < 64 * 1024
    plan = plan_work(info, AnalysisSettings(sample_fps=5.0), DAY)
    assert (plan.segments, plan.samples) == ([Segment(0.0, None)], 2)
    assert len(plan_ranges(info.duration_s, 30)) == 33_334  # the duration-based plan


def test_sparse_frames_are_packed_and_counted_as_present(folder: Path) -> None:
    clip = make_sparse_video(folder / "sparse.mkv", [i * 100.0 for i in range(12)])
    info = probe(clip)
    timeline = read_timeline(info, sample_fps=5.0, bucket_s=30, max_frames=1000)
    assert timeline is not None
    assert (timeline.frames, timeline.samples) == (12, 12)
    assert sorted(timeline.samples_per_bucket) == [round(i * 100 / 30 - 0.5) for i in range(12)]
    few = WorkLimits(segment_seconds=1, max_duration_s=86_400, max_segments=5000)
    # 1 s at 5 frames a second: 5 samples a segment; 12 one-frame buckets -> 5 + 5 + 2
    plan = plan_work(info, AnalysisSettings(sample_fps=5.0), few)
    assert plan.samples == 12
    assert [(s.start_s, s.end_s) for s in plan.segments] == [
        (0.0, 500.0), (500.0, 1000.0), (1000.0, None)
    ]


def test_footage_over_the_duration_limit_is_refused_naming_the_users_file(folder: Path) -> None:
    clip = make_composition_video(folder / "twelve.mp4", [(1, 0)] * 6)  # 12 s
    limits = WorkLimits(segment_seconds=4, max_duration_s=10, max_segments=5000)
    with pytest.raises(InputError) as refused:
        plan_work(probe(clip), AnalysisSettings(sample_fps=2.0), limits, name="lobby.mp4")
    assert str(refused.value) == (
        "lobby.mp4: more than 10 s of footage to analyse; a job may analyse at most 10 s: "
        "split the file into shorter ones"
    )
    assert "twelve" not in str(refused.value)


def test_frames_spread_over_too_many_segments_are_refused(folder: Path) -> None:
    clip = make_sparse_video(folder / "spread.mkv", [i * 100.0 for i in range(12)])
    limits = WorkLimits(segment_seconds=30, max_duration_s=86_400, max_segments=2)
    ok = plan_work(probe(clip), AnalysisSettings(sample_fps=5.0), limits)  # packed: one
    assert len(ok.segments) == 1
    tight = WorkLimits(segment_seconds=0.2, max_duration_s=86_400, max_segments=2)
    with pytest.raises(InputError, match=r"^door\.mkv: its frames are spread over 12 parts"):
        plan_work(probe(clip), AnalysisSettings(sample_fps=5.0), tight, name="door.mkv")


def test_a_file_holding_more_frames_than_a_job_may_is_refused(folder: Path) -> None:
    # 1000 frames a second, so that the frames, not the samples, run over: demuxing and
    # decoding are bounded too, whatever frame rate a file claims.
    clip = folder / "fast.mkv"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi",
         "-i", "color=c=gray:size=64x64:rate=1000", "-t", "0.5", "-c:v", "libx264",
         "-preset", "ultrafast", str(clip)],
        check=True,
        timeout=60,
    )
    limits = WorkLimits(segment_seconds=4, max_duration_s=1, max_segments=5000)  # 240 frames
    with pytest.raises(InputError, match=r"^gate\.mkv: holds more than 240 frames"):
        plan_work(probe(clip), AnalysisSettings(sample_fps=1.0), limits, name="gate.mkv")


def test_a_stream_without_timestamps_is_planned_from_its_frame_count(folder: Path) -> None:
    raw = folder / "camera.h264"  # a raw H.264 stream: no container, no timestamps
    subprocess.run(
        ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc2=size=160x120:rate=10:duration=3", "-c:v", "libx264", "-f", "h264",
         str(raw)],
        check=True,
        timeout=60,
    )
    info = probe(raw)
    assert read_timeline(info, sample_fps=2.0, bucket_s=1, max_frames=1000) is None
    limits = WorkLimits(segment_seconds=1, max_duration_s=86_400, max_segments=5000)
    plan = plan_work(info, AnalysisSettings(sample_fps=2.0), limits)
    assert (plan.segments, plan.samples) == (plan_ranges(3.0, 1), 6)
