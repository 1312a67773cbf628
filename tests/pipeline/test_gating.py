"""Motion gating: unchanged frames carry the last analysis over, with the same answers."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from maskwatch.settings import DEFAULT_CHECKPOINT
from ml.people_footage import STILL, STILL_SECONDS, make_people_video
from storage.db import make_engine, make_session_factory, upgrade
from storage.models import FrameStat, JobStatus
from storage.repositories import jobs as job_repo
from storage.repositories import reports as report_repo
from storage.repositories import tracks as track_repo
from tests.db_support import add_video_job
from worker.jobs import run_job
from worker.pipeline.analyze import AnalysisSettings, Models, load_models
from worker.pipeline.detect import FaceDetector, Rect, RegionDetector
from worker.pipeline.gating import MAX_CARRIED, MotionGate, grid_start
from worker.pipeline.types import Detections


def frame_with(value: int = 100, corner: int | None = None) -> np.ndarray:
    image = np.full((360, 640, 3), value, np.uint8)
    if corner is not None:
        image[:48, :48] = corner  # a face-sized change in one corner of a big scene
    return image


@pytest.mark.parametrize(
    ("second", "analysed"),
    [
        (frame_with(100), False),  # the same scene
        (frame_with(101), False),  # re-encoding noise: a level or so everywhere
        (frame_with(100, corner=200), True),  # someone steps into a corner
        (frame_with(140), True),  # the lights go up
    ],
)
def test_gate_analyses_only_frames_that_changed(second: np.ndarray, analysed: bool) -> None:
    gate = MotionGate()
    assert gate.needs_analysis(frame_with(100)) is True
    assert gate.needs_analysis(second) is analysed


def test_gate_forces_analysis_on_an_absolute_grid_of_samples() -> None:
    # a job split into segments gates as one run: the grid does not depend on where it began
    whole, late = MotionGate(0.2), MotionGate(0.2)
    samples = 2 * MAX_CARRIED + 5
    verdicts = [whole.needs_analysis(frame_with(100), i * 0.2) for i in range(samples)]
    assert [i for i, v in enumerate(verdicts) if v] == [0, MAX_CARRIED, 2 * MAX_CARRIED]
    # a segment from sample 2 * MAX_CARRIED + 3, warmed up from 7 samples before
    start = grid_start(2 * MAX_CARRIED + 3 - 7)
    assert start == MAX_CARRIED
    late_verdicts = [
        late.needs_analysis(frame_with(100), i * 0.2) for i in range(start, samples)
    ]
    assert late_verdicts == verdicts[start:]
    assert grid_start(2 * MAX_CARRIED + 2) == 2 * MAX_CARRIED


def test_gate_compares_with_the_last_analysed_frame_and_forces_a_refresh() -> None:
    gate = MotionGate()
    gate.needs_analysis(frame_with(100))
    # a slow drift of 2 levels a frame: each step is small, the sum is not
    verdicts = [gate.needs_analysis(frame_with(100 + 2 * i)) for i in range(1, 5)]
    assert verdicts == [False, False, True, False]
    still = MotionGate()
    verdicts = [still.needs_analysis(frame_with(100)) for _ in range(2 * MAX_CARRIED + 3)]
    assert verdicts.count(True) == 3  # the first, then one forced per MAX_CARRIED carried
    assert (still.analysed, still.carried) == (3, 2 * MAX_CARRIED)


@dataclass
class CountingDetector:
    """The real detector, counting the frames it is asked to search."""

    inner: FaceDetector
    frames: int = 0

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        self.frames += len(images)
        return self.inner.detect(images)

    def detect_regions(
        self,
        image: np.ndarray,
        rects: list[Rect],
        expected: list[int] | None = None,
        follow: list[np.ndarray] | None = None,
    ) -> Detections:
        assert isinstance(self.inner, RegionDetector)
        self.frames += 1
        return self.inner.detect_regions(image, rects, expected, follow)


@pytest.fixture(scope="module")
def models() -> Models:
    return load_models(AnalysisSettings(), DEFAULT_CHECKPOINT, "cpu", threads=1)


@pytest.fixture
def factory(tmp_path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    upgrade(url)
    return make_session_factory(make_engine(url))


def run(factory: sessionmaker[Session], video: Path, models: Models, exhaustive: bool):  # type: ignore[no-untyped-def]
    with factory() as session:
        settings = AnalysisSettings(exhaustive=exhaustive).to_dict()
        job_id = add_video_job(session, video, settings=settings, site="lobby", camera="site").id
        session.commit()
    counting = CountingDetector(models.detector)
    run_job(factory, job_id, replace(models, detector=counting))  # type: ignore[arg-type]
    with factory() as session:
        job = job_repo.get_job(session, job_id)
        assert job is not None and job.status is JobStatus.SUCCEEDED, job and job.error
        modes = list(
            session.scalars(
                select(FrameStat.mode).where(FrameStat.job_id == job_id).order_by(FrameStat.id)
            )
        )
        summary = report_repo.job_summary(session, job_id)
        people = track_repo.people_summary(session, job_id)
    return counting.frames, modes, summary, people


@pytest.mark.slow
def test_a_still_scene_is_detected_on_few_frames_with_the_same_answers(
    factory: sessionmaker[Session], models: Models, tmp_path: Path
) -> None:
    video = make_people_video(tmp_path / "lobby.mp4", STILL, STILL_SECONDS)
    calls, modes, summary, people = run(factory, video, models, exhaustive=False)
    reference_calls, reference_modes, reference_summary, reference_people = run(
        factory, video, models, exhaustive=True
    )
    frames = round(STILL_SECONDS * 5)
    assert len(modes) == len(reference_modes) == frames  # every sampled frame keeps its row
    assert reference_calls == frames and set(reference_modes) == {"analysed"}
    # detected on the first frame, then once per MAX_CARRIED frames carried
    assert calls <= frames // MAX_CARRIED + 1 < frames // 4
    assert modes.count("analysed") == calls
    assert modes.count("carried") == frames - calls
    assert summary == reference_summary
    assert people == reference_people
    assert (people.total, people.masked, people.unmasked) == (3, 2, 1)
