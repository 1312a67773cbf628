"""Cameras and jobs: creation, constraints, lifecycle, progress, listing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import Camera, InputKind, Job, JobStatus
from storage.repositories.cameras import get_or_create_camera
from storage.repositories.jobs import (
    InvalidJobTransition,
    JobNotFound,
    add_progress,
    create_job,
    get_job,
    list_jobs,
    mark_failed,
    mark_running,
    mark_succeeded,
)

MakeJob = Callable[..., Job]


def test_get_or_create_camera_returns_the_same_row(session: Session) -> None:
    first = get_or_create_camera(session, "north", "cam-1")
    again = get_or_create_camera(session, "north", "cam-1")
    other_site = get_or_create_camera(session, "south", "cam-1")
    assert first.id == again.id
    assert other_site.id != first.id
    assert session.scalar(select(func.count(Camera.id))) == 2


def test_camera_site_and_name_are_unique(session: Session) -> None:
    get_or_create_camera(session, "north", "cam-1")
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(Camera(site="north", name="cam-1"))
        session.flush()


def test_empty_camera_name_is_rejected(session: Session) -> None:
    with pytest.raises(ValueError):
        get_or_create_camera(session, "north", "  ")


def test_create_job_defaults(session: Session, camera: Camera) -> None:
    job = create_job(
        session,
        camera=camera,
        input_kind=InputKind.IMAGE,
        input_path="/tmp/x.jpg",
        input_name="x.jpg",
        settings={"sample_fps": 2.0, "face_threshold": 0.9},
    )
    session.expunge_all()
    loaded = get_job(session, job.id)
    assert loaded is not None
    assert len(loaded.id) == 32 and int(loaded.id, 16) >= 0
    assert loaded.status is JobStatus.QUEUED
    assert loaded.input_kind is InputKind.IMAGE
    assert loaded.frames_done == 0 and loaded.frames_total is None
    assert loaded.settings == {"sample_fps": 2.0, "face_threshold": 0.9}
    assert loaded.recorded_at == loaded.created_at
    assert loaded.created_at.utcoffset() == timedelta(0)
    assert loaded.camera.name == camera.name


def test_recorded_at_round_trips_as_utc(make_job: MakeJob, session: Session) -> None:
    plus_two = timezone(timedelta(hours=2))
    job = make_job(recorded_at=datetime(2024, 3, 1, 12, 0, 0, 250000, tzinfo=plus_two))
    session.expunge_all()
    loaded = get_job(session, job.id)
    assert loaded is not None
    assert loaded.recorded_at == datetime(2024, 3, 1, 10, 0, 0, 250000, tzinfo=UTC)
    assert loaded.recorded_at.utcoffset() == timedelta(0)


def test_naive_recorded_at_is_rejected(make_job: MakeJob) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_job(recorded_at=datetime(2024, 3, 1, 12, 0))


def test_status_is_stored_as_lowercase_value(make_job: MakeJob, session: Session) -> None:
    job = make_job(status=JobStatus.SUCCEEDED)
    raw = session.execute(text("SELECT status FROM jobs WHERE id = :id"), {"id": job.id})
    assert raw.scalar_one() == "succeeded"


def test_job_lifecycle_succeeded(make_job: MakeJob, session: Session) -> None:
    job = make_job()
    mark_running(session, job, frames_total=120)
    assert job.status is JobStatus.RUNNING and job.frames_total == 120
    assert job.started_at is not None
    started_at = job.started_at

    mark_running(session, job, frames_total=None)  # a retried task
    assert job.frames_total == 120
    assert job.started_at == started_at

    mark_succeeded(session, job)
    assert job.status is JobStatus.SUCCEEDED
    assert job.finished_at is not None and job.finished_at >= started_at
    assert job.error is None


def test_mark_failed_truncates_error(make_job: MakeJob, session: Session) -> None:
    job = make_job(status=JobStatus.RUNNING)
    mark_failed(session, job, "x" * 5000)
    session.expunge_all()
    loaded = get_job(session, job.id)
    assert loaded is not None
    assert loaded.status is JobStatus.FAILED
    assert loaded.error == "x" * 2000


def test_cancelled_job_cannot_be_marked_succeeded(make_job: MakeJob, session: Session) -> None:
    job = make_job(status=JobStatus.RUNNING)
    # Another process cancels the job; this worker's copy still says "running".
    session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(status=JobStatus.CANCELLED)
        .execution_options(synchronize_session=False)
    )
    assert job.status is JobStatus.RUNNING
    with pytest.raises(InvalidJobTransition, match="is cancelled"):
        mark_succeeded(session, job)
    session.refresh(job)
    assert job.status is JobStatus.CANCELLED and job.finished_at is None


def test_succeeded_job_cannot_be_marked_running(make_job: MakeJob, session: Session) -> None:
    job = make_job(status=JobStatus.SUCCEEDED)
    with pytest.raises(InvalidJobTransition):
        mark_running(session, job, frames_total=1)


def test_add_progress_increments_in_sql(make_job: MakeJob, session: Session) -> None:
    job = make_job(status=JobStatus.RUNNING)
    add_progress(session, job.id, 30)
    add_progress(session, job.id, 12)
    session.refresh(job)
    assert job.frames_done == 42


def test_add_progress_on_unknown_job_raises(session: Session) -> None:
    with pytest.raises(JobNotFound):
        add_progress(session, "0" * 32, 1)


def test_camera_with_jobs_cannot_be_deleted(make_job: MakeJob, session: Session) -> None:
    job = make_job()
    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(delete(Camera).where(Camera.id == job.camera_id))


def test_list_jobs_filters_pages_and_counts(session: Session, make_job: MakeJob) -> None:
    north = get_or_create_camera(session, "north", "door")
    south = get_or_create_camera(session, "south", "door")
    jobs = [
        make_job(cam=north, status=JobStatus.SUCCEEDED),
        make_job(cam=north, status=JobStatus.FAILED),
        make_job(cam=north),
        make_job(cam=south, status=JobStatus.SUCCEEDED),
    ]

    page, total = list_jobs(session, site="north", offset=0, limit=2)
    assert total == 3 and len(page) == 2
    rest, _ = list_jobs(session, site="north", offset=2, limit=2)
    assert {job.id for job in page + rest} == {job.id for job in jobs[:3]}

    done, total = list_jobs(session, camera="door", status=JobStatus.SUCCEEDED)
    assert total == 2 and {job.id for job in done} == {jobs[0].id, jobs[3].id}

    either, total = list_jobs(session, status=[JobStatus.FAILED, JobStatus.QUEUED])
    assert total == 2 and {job.id for job in either} == {jobs[1].id, jobs[2].id}
    assert all(job.camera.site == "north" for job in either)


def test_list_jobs_newest_first(session: Session, make_job: MakeJob) -> None:
    older = make_job()
    newer = make_job()
    older.created_at = datetime(2020, 1, 1, tzinfo=UTC)
    session.flush()
    page, _ = list_jobs(session)
    assert [job.id for job in page] == [newer.id, older.id]


def test_list_jobs_sql_looking_filter_matches_nothing(session: Session, make_job: MakeJob) -> None:
    make_job()
    assert list_jobs(session, camera="x' OR 1=1 --") == ([], 0)
    assert list_jobs(session, site="x' OR '1'='1") == ([], 0)


@pytest.mark.parametrize(("offset", "limit"), [(-1, 10), (0, 0), (0, 501)])
def test_list_jobs_rejects_bad_paging(session: Session, offset: int, limit: int) -> None:
    with pytest.raises(ValueError):
        list_jobs(session, offset=offset, limit=limit)


def test_frames_done_never_exceeds_frames_total(make_job: MakeJob, session: Session) -> None:
    """The total is the header's estimate; a file holding more frames raises it."""
    job = make_job(status=JobStatus.QUEUED)
    mark_running(session, job, frames_total=40)
    add_progress(session, job.id, 30)
    session.refresh(job)
    assert (job.frames_done, job.frames_total) == (30, 40)
    add_progress(session, job.id, 25)
    session.refresh(job)
    assert (job.frames_done, job.frames_total) == (55, 55)
    # Finished, the total is what was analysed, whichever way the estimate was off.
    mark_succeeded(session, job, frames_total=55)
    assert (job.frames_done, job.frames_total) == (55, 55)


def test_an_unknown_total_stays_unknown(make_job: MakeJob, session: Session) -> None:
    job = make_job(status=JobStatus.QUEUED)
    mark_running(session, job, frames_total=None)
    assert job.frames_total is None
    add_progress(session, job.id, 5)
    session.refresh(job)
    assert (job.frames_done, job.frames_total) == (5, None)
