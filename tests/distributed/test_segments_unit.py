"""Segment planning, claiming and finalisation, and the Celery settings, without workers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from maskwatch.core.records import FrameRecord
from maskwatch.settings import Settings
from storage.db import make_engine, make_session_factory, upgrade
from storage.models import JobSegment, JobStatus, SegmentStatus, utcnow
from storage.repositories import frames as frame_repo
from storage.repositories import jobs as job_repo
from storage.repositories import segments as segment_repo
from tests.db_support import BACKENDS, NO_POSTGRES, add_video_job, postgres_database
from worker import planning, segments
from worker.jobs import Segment, SegmentOutcome
from worker.pipeline.errors import InputError

NEVER_STALE = 3600.0
LIMITS = planning.WorkLimits(segment_seconds=30, max_duration_s=86_400, max_segments=5000)


@pytest.mark.parametrize(
    ("duration_s", "segment_s", "expected"),
    [
        (None, 30, [(0.0, None)]),  # an image
        (12.0, 30, [(0.0, None)]),
        (30.0, 30, [(0.0, None)]),
        (60.0, 30, [(0.0, 30.0), (30.0, None)]),
        (61.0, 30, [(0.0, 30.0), (30.0, None)]),  # a 1 s tail joins the last segment
        (70.0, 30, [(0.0, 30.0), (30.0, 60.0), (60.0, None)]),
        (16.0, 4, [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0), (12.0, None)]),
        (1.0, 0.3, [(0.0, 0.3), (0.3, 0.6), (0.6, 0.9), (0.9, None)]),  # not 0.8999...
    ],
)
def test_plan_ranges(
    duration_s: float | None, segment_s: float, expected: list[tuple[float, float | None]]
) -> None:
    assert planning.plan_ranges(duration_s, segment_s) == [Segment(a, b) for a, b in expected]


def test_plan_ranges_refuses_a_non_positive_length() -> None:
    with pytest.raises(ValueError, match="segment_seconds"):
        planning.plan_ranges(10.0, 0)


def test_bad_input_is_never_retried() -> None:
    import worker.tasks  # noqa: F401  (registers the tasks)
    from worker.celery_app import app

    for name in ("analysis.start_job", "analysis.process_segment"):
        retried = app.tasks[name].autoretry_for
        assert not any(issubclass(InputError, kind) for kind in retried), name


def test_settings_refuse_a_visibility_timeout_shorter_than_a_task() -> None:
    with pytest.raises(ValidationError, match="visibility_timeout_s"):
        Settings(task_time_limit_s=3600, visibility_timeout_s=3600)


# ------------------------------------------------------------------ storage, two backends


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = postgres_database("maskwatch_dist_unit_test", recreate=True)
    upgrade(url)
    return url


@pytest.fixture(params=BACKENDS)
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'unit.sqlite3'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def _running_job(factory: sessionmaker[Session], segment_count: int) -> str:
    """A running job with ``segment_count`` pending 4-second segments (committed)."""
    with factory() as session:
        job = add_video_job(session, "/nowhere/clip.mp4", settings={"sample_fps": 1.0}, site="unit")
        job_repo.mark_running(session, job, frames_total=segment_count)
        ranges = [(4.0 * i, 4.0 * (i + 1)) for i in range(segment_count)]
        segment_repo.create_segments(session, job.id, ranges)
        session.commit()
        return job.id


def _claim(
    factory: sessionmaker[Session], job_id: str, index: int, task_id: str, **kw: float
) -> JobSegment | None:
    with factory() as session:
        segment = segments.claim(
            session,
            job_id,
            index,
            task_id=task_id,
            worker="host:1",
            stale_after_s=kw.get("stale_after_s", NEVER_STALE),
            max_attempts=int(kw.get("max_attempts", 5)),
        )
        session.commit()
        return segment


def test_a_segment_runs_under_one_task_at_a_time(factory: sessionmaker[Session]) -> None:
    job_id = _running_job(factory, 1)
    first = _claim(factory, job_id, 0, "task-a")
    assert first is not None and (first.status, first.attempts) == (SegmentStatus.RUNNING, 1)
    # A duplicate message (another task id) while the heartbeat is fresh: skipped.
    assert _claim(factory, job_id, 0, "task-b") is None
    # The same message redelivered after its process died: runs again.
    again = _claim(factory, job_id, 0, "task-a")
    assert again is not None and again.attempts == 2
    # No heartbeat for longer than stale_after_s: another task may take it over.
    taken = _claim(factory, job_id, 0, "task-b", stale_after_s=-1)
    assert taken is not None and (taken.task_id, taken.attempts) == ("task-b", 3)


def test_a_segment_of_a_job_that_is_not_running_is_not_claimed(
    factory: sessionmaker[Session],
) -> None:
    job_id = _running_job(factory, 2)
    with factory() as session:
        job = job_repo.get_job(session, job_id)
        assert job is not None
        from worker.dispatch import cancel_job

        cancel_job(session, job)
        session.commit()
    assert _claim(factory, job_id, 0, "task-a") is None
    with factory() as session:
        statuses = {s.status for s in segment_repo.list_segments(session, job_id)}
    assert statuses == {SegmentStatus.CANCELLED}


def test_a_segment_that_keeps_killing_its_worker_fails_the_job(
    factory: sessionmaker[Session],
) -> None:
    job_id = _running_job(factory, 2)
    for _ in range(2):
        assert _claim(factory, job_id, 1, "task-a", max_attempts=2) is not None
    assert _claim(factory, job_id, 1, "task-a", max_attempts=2) is None
    assert _outcome(factory, job_id) == (
        JobStatus.FAILED,
        "segment 1 (4 s to 8 s) was started 2 times without finishing; "
        "its worker process keeps dying (out of memory?)",
    )
    with factory() as session:
        statuses = [s.status for s in segment_repo.list_segments(session, job_id)]
    assert statuses == [SegmentStatus.CANCELLED, SegmentStatus.FAILED]


def _store_and_complete(
    factory: sessionmaker[Session], job_id: str, index: int, faces: int, task_id: str
) -> bool:
    with factory() as session:
        job = job_repo.get_job(session, job_id)
        segment = segment_repo.get_segment(session, job_id, index)
        assert job is not None and segment is not None
        record = FrameRecord(
            frame_index=index * 10,
            timestamp_s=index * 4.0,
            faces=faces,
            masked=faces,
            unmasked=0,
            incorrect=0,
        )
        frame_repo.replace_frames(session, job, [record])
        segment_repo.record_progress(session, segment, 1)
        session.commit()
        finalised = segments.complete(session, job, segment, SegmentOutcome(1, faces), task_id)
        session.commit()
        return finalised


@pytest.mark.parametrize(
    ("faces", "status", "error"),
    [
        (2, JobStatus.SUCCEEDED, None),
        (0, JobStatus.SUCCEEDED, None),  # nobody appears: a result, not an error
    ],
)
def test_the_last_segment_to_finish_finalises_the_job(
    factory: sessionmaker[Session], faces: int, status: JobStatus, error: str | None
) -> None:
    job_id = _running_job(factory, 3)
    for index in (2, 0, 1):
        assert _claim(factory, job_id, index, f"task-{index}") is not None
    assert not _store_and_complete(factory, job_id, 2, faces, "task-2")
    assert not _store_and_complete(factory, job_id, 0, faces, "task-0")
    assert _store_and_complete(factory, job_id, 1, faces, "task-1")
    with factory() as session:
        job = job_repo.get_job(session, job_id)
        assert job is not None
        assert (job.status, job.error, job.frames_done) == (status, error, 3)


def test_a_taken_over_run_does_not_finish_the_segment(factory: sessionmaker[Session]) -> None:
    job_id = _running_job(factory, 1)
    assert _claim(factory, job_id, 0, "task-old") is not None
    assert _claim(factory, job_id, 0, "task-new", stale_after_s=-1) is not None
    assert not _store_and_complete(factory, job_id, 0, 1, "task-old")
    assert _store_and_complete(factory, job_id, 0, 1, "task-new")


@pytest.mark.postgres
@pytest.mark.skipif(NO_POSTGRES, reason="needs PostgreSQL's row locks")
def test_two_segments_finishing_at_once_finalise_the_job_exactly_once(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    factory = make_session_factory(engine)
    try:
        for _ in range(10):
            job_id = _running_job(factory, 2)
            for index in (0, 1):
                assert _claim(factory, job_id, index, f"task-{index}") is not None
            barrier = threading.Barrier(2)
            results: list[bool] = []

            def finish(
                index: int,
                job_id: str = job_id,
                barrier: threading.Barrier = barrier,
                results: list[bool] = results,
            ) -> None:
                with factory() as session:
                    job = job_repo.get_job(session, job_id)
                    segment = segment_repo.get_segment(session, job_id, index)
                    assert job is not None and segment is not None
                    barrier.wait(timeout=10)
                    outcome = SegmentOutcome(0, 0)
                    results.append(
                        segments.complete(session, job, segment, outcome, f"task-{index}")
                    )
                    session.commit()

            threads = [threading.Thread(target=finish, args=(i,)) for i in (0, 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            assert sorted(results) == [False, True]
            with factory() as session:
                job = job_repo.get_job(session, job_id)
                assert job is not None and job.status is JobStatus.FAILED  # no frame stored
    finally:
        engine.dispose()


def test_plan_job_fails_fast_on_a_missing_input(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        job = add_video_job(session, "/nowhere/gone.mp4", site="unit")
        session.commit()
        with pytest.raises(InputError, match="gone.mp4: file not found"):
            segments.plan_job(session, job.id, LIMITS)
        session.rollback()
        with pytest.raises(LookupError):
            segments.plan_job(session, "0" * 32, LIMITS)


def test_stalled_segments_are_those_without_a_recent_heartbeat(
    factory: sessionmaker[Session],
) -> None:
    job_id = _running_job(factory, 3)
    assert _claim(factory, job_id, 0, "task-0") is not None
    with factory() as session:
        soon = utcnow() + timedelta(seconds=5)
        refs = [r for r in segment_repo.stalled_segments(session, soon) if r.job_id == job_id]
        assert [r.segment_index for r in refs] == [0, 1, 2]
        past = utcnow() - timedelta(seconds=60)
        assert [r for r in segment_repo.stalled_segments(session, past) if r.job_id == job_id] == []


def test_progress_of_a_rerun_segment_neither_drops_nor_doubles(
    factory: sessionmaker[Session],
) -> None:
    job_id = _running_job(factory, 2)

    def progress(index: int, frames_done: int) -> tuple[int, int]:
        with factory() as session:
            segment = segment_repo.get_segment(session, job_id, index)
            assert segment is not None
            segment_repo.record_progress(session, segment, frames_done)
            session.commit()
            job = job_repo.get_job(session, job_id)
            session.refresh(segment)
            assert job is not None
            return segment.frames_done, job.frames_done

    assert _claim(factory, job_id, 0, "task-a") is not None
    assert _claim(factory, job_id, 1, "task-b") is not None
    assert progress(0, 8) == (8, 8)
    assert progress(1, 4) == (4, 12)
    # Segment 0's process died; the redelivered run starts again from its first frame.
    assert _claim(factory, job_id, 0, "task-a") is not None
    assert progress(0, 4) == (8, 12)
    assert progress(0, 12) == (12, 16)


# ------------------------------------------------- the task functions, called directly


@dataclass
class _Process:
    """The parts of worker.celery_app.WorkerProcess that start_job and on_failure use."""

    session_factory: sessionmaker[Session]
    settings: Settings = field(default_factory=lambda: Settings(segment_seconds=4))
    sent: list[tuple[str, list[int]]] = field(default_factory=list)  # (job id, segments) sent


@pytest.fixture
def task_process(factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> _Process:
    import worker.tasks

    process = _Process(factory)
    monkeypatch.setattr(worker.tasks, "worker_process", lambda: process)
    monkeypatch.setattr(
        worker.tasks,
        "enqueue_segments",
        lambda job_id, indices, **_: process.sent.append((job_id, indices)),
    )
    return process


@pytest.fixture
def ten_seconds(tmp_path: Path) -> Path:
    """A 10 s clip (five 2 s shots of one face)."""
    from ml.footage import make_composition_video

    return make_composition_video(tmp_path / "0f3a9c.mp4", [(1, 0)] * 5)


def _queued_job(factory: sessionmaker[Session], path: Path, input_name: str | None = None) -> str:
    with factory() as session:
        job = add_video_job(
            session, path, settings={"sample_fps": 2.0}, site="unit", input_name=input_name
        )
        session.commit()
        return job.id


def test_start_job_plans_segments_and_sends_them_once(
    factory: sessionmaker[Session], task_process: _Process, ten_seconds: Path
) -> None:
    from worker.tasks import start_job

    job_id = _queued_job(factory, ten_seconds)
    start_job.run(job_id)
    assert task_process.sent == [(job_id, [0, 1, 2])]
    with factory() as session:
        job = job_repo.get_job(session, job_id)
        assert job is not None and (job.status, job.frames_total) == (JobStatus.RUNNING, 20)
        ranges = [(s.start_s, s.end_s) for s in segment_repo.list_segments(session, job_id)]
    assert ranges == [(0.0, 4.0), (4.0, 8.0), (8.0, None)]
    # A duplicate or redelivered start re-sends the segments still pending, plans nothing.
    assert _claim(factory, job_id, 0, "task-0") is not None
    start_job.run(job_id)
    assert task_process.sent[-1] == (job_id, [1, 2])


def test_start_job_fails_bad_input_without_raising(
    factory: sessionmaker[Session], task_process: _Process, tmp_path: Path
) -> None:
    from worker.tasks import start_job

    bad = tmp_path / "menu.mp4"
    bad.write_text("soup of the day\n")
    job_id = _queued_job(factory, bad)
    start_job.run(job_id)  # no exception: nothing for Celery to retry
    assert task_process.sent == []
    with factory() as session:
        job = job_repo.get_job(session, job_id)
        assert job is not None and job.status is JobStatus.FAILED
        assert job.error is not None and job.error.startswith("menu.mp4: not a readable video")


@pytest.mark.usefixtures("task_process")
def test_on_failure_fails_the_job_on_a_bug_but_not_on_a_transient_fault(
    factory: sessionmaker[Session],
) -> None:
    from worker.tasks import process_segment

    job_id = _running_job(factory, 2)
    assert _claim(factory, job_id, 1, "task-1") is not None
    transient = OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    process_segment.on_failure(transient, "task-1", (job_id, 1), {}, None)
    assert _outcome(factory, job_id) == (JobStatus.RUNNING, None)

    process_segment.on_failure(RuntimeError("boom"), "task-1", (job_id, 1), {}, None)
    with factory() as session:
        job = job_repo.get_job(session, job_id)
        assert job is not None
        assert (job.status, job.error) == (JobStatus.FAILED, "internal error: RuntimeError: boom")
        statuses = [s.status for s in segment_repo.list_segments(session, job_id)]
    assert statuses == [SegmentStatus.CANCELLED, SegmentStatus.FAILED]


def _outcome(factory: sessionmaker[Session], job_id: str) -> tuple[JobStatus, str | None]:
    """The job's status and error."""
    with factory() as session:
        job = job_repo.get_job(session, job_id)
        assert job is not None
        return job.status, job.error


def test_start_job_fails_a_job_over_the_limits_naming_the_users_file(
    factory: sessionmaker[Session], task_process: _Process, ten_seconds: Path
) -> None:
    from worker.tasks import start_job

    # The API accepted it under a higher limit, or before the limit was lowered.
    task_process.settings = Settings(segment_seconds=4, max_job_duration_s=5)
    job_id = _queued_job(factory, ten_seconds, input_name="lobby.mp4")
    start_job.run(job_id)
    assert task_process.sent == []
    assert _outcome(factory, job_id) == (
        JobStatus.FAILED,
        "lobby.mp4: more than 5 s of footage to analyse; a job may analyse at most "
        "5 s: split the file into shorter ones",
    )
    with factory() as session:
        assert segment_repo.list_segments(session, job_id) == []
