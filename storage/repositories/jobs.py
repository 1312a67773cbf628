"""Analysis job creation, state transitions, progress and listing."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, case, delete, func, literal, select, update
from sqlalchemy.orm import Session, contains_eager

from storage.models import Camera, InputKind, Job, JobStatus, UTCDateTime, utcnow
from storage.repositories.pages import page_of

MAX_ERROR_CHARS = 2000
MAX_PAGE_SIZE = 500
FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
FOOTAGE_REMOVED = ""  # the input_path of a job whose upload was deleted (retention)


class JobNotFound(LookupError):
    """No job has the given id."""


class InvalidJobTransition(ValueError):
    """The job is not in a status the requested transition may start from."""


_FROM: dict[JobStatus, frozenset[JobStatus]] = {
    # running -> running lets a retried task pick the job up again.
    JobStatus.RUNNING: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    JobStatus.SUCCEEDED: frozenset({JobStatus.RUNNING}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
}


def create_job(
    session: Session,
    *,
    camera: Camera,
    input_kind: InputKind,
    input_path: str,
    input_name: str,
    settings: dict[str, Any],
    recorded_at: datetime | None = None,
) -> Job:
    """Add a queued job; ``recorded_at`` (timezone-aware) defaults to the creation time.

    Raises:
        ValueError: if ``recorded_at`` is naive.
    """
    if recorded_at is not None and recorded_at.utcoffset() is None:
        raise ValueError("recorded_at must be timezone-aware")
    now = utcnow()
    job = Job(
        camera=camera,
        status=JobStatus.QUEUED,
        input_kind=InputKind(input_kind),
        input_path=input_path,
        input_name=input_name,
        settings=dict(settings),
        recorded_at=recorded_at or now,
        frames_done=0,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: str) -> Job | None:
    """The job with this id, with its camera loaded."""
    return session.get(Job, job_id)


def job_exists(session: Session, job_id: str) -> bool:
    """Whether a job has this id, read from the database (not the session's cache)."""
    return session.scalar(select(Job.id).where(Job.id == job_id)) is not None


def _transition(session: Session, job: Job, to: JobStatus, **values: Any) -> None:
    """Move ``job`` to ``to`` with one conditional UPDATE, then reload it.

    The status check happens in the database, so a job cancelled by another process
    cannot be overwritten by a worker holding a stale copy.
    """
    allowed = _FROM[to]
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Job)
        .where(Job.id == job.id, Job.status.in_(allowed))
        .values(status=to, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:
        current = session.scalar(select(Job.status).where(Job.id == job.id))
        if current is None:
            raise JobNotFound(job.id)
        raise InvalidJobTransition(f"job {job.id} is {current.value}, cannot become {to.value}")
    session.refresh(job)


def mark_running(session: Session, job: Job, frames_total: int | None) -> None:
    """Mark a queued (or retried running) job as running.

    ``started_at`` keeps the first start; ``frames_total`` is kept when None is passed.

    Raises:
        InvalidJobTransition: if the job already finished, failed or was cancelled.
    """
    if frames_total is not None and frames_total < 0:
        raise ValueError("frames_total must be >= 0")
    values: dict[str, Any] = {
        "started_at": func.coalesce(Job.started_at, literal(utcnow(), UTCDateTime())),
        "error": None,
    }
    if frames_total is not None:
        values["frames_total"] = frames_total
    session.flush()
    _transition(session, job, JobStatus.RUNNING, **values)


def progress_values(frames_done: ColumnElement[int] | int) -> dict[str, Any]:
    """UPDATE values setting a job's ``frames_done``, raising ``frames_total`` to match.

    ``frames_total`` is an estimate made from the file's header; a file that holds more
    frames than it said must not show more frames done than expected.
    """
    return {
        "frames_done": frames_done,
        "frames_total": case(
            (Job.frames_total < frames_done, frames_done), else_=Job.frames_total
        ),
    }


def add_progress(session: Session, job_id: str, frames: int) -> None:
    """Atomically add ``frames`` to the job's ``frames_done`` (safe across processes).

    Loaded Job objects are not updated; refresh them to see the new count.

    Raises:
        JobNotFound: if no job has this id.
    """
    if frames < 0:
        raise ValueError("frames must be >= 0")
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Job)
        .where(Job.id == job_id)
        .values(**progress_values(Job.frames_done + frames))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:
        raise JobNotFound(job_id)


def mark_succeeded(session: Session, job: Job, frames_total: int | None = None) -> None:
    """Mark a running job as succeeded; ``frames_total``, when given, replaces the estimate
    with the frames actually analysed.

    Raises:
        InvalidJobTransition: if the job is not running (e.g. it was cancelled meanwhile).
    """
    session.flush()
    exact = {} if frames_total is None else {"frames_total": frames_total}
    _transition(session, job, JobStatus.SUCCEEDED, finished_at=utcnow(), error=None, **exact)


def mark_failed(session: Session, job: Job, error: str) -> None:
    """Mark a queued or running job as failed, keeping the first 2000 characters of ``error``."""
    session.flush()
    _transition(session, job, JobStatus.FAILED, finished_at=utcnow(), error=error[:MAX_ERROR_CHARS])


def mark_cancelled(session: Session, job: Job) -> None:
    """Mark a queued or running job as cancelled."""
    session.flush()
    _transition(session, job, JobStatus.CANCELLED, finished_at=utcnow())


def list_jobs(
    session: Session,
    *,
    site: str | None = None,
    camera: str | None = None,
    status: JobStatus | Collection[JobStatus] | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Job], int]:
    """One page of jobs, newest first, and the number of jobs matching the filters.

    Args:
        site: only jobs from cameras at this site.
        camera: only jobs from cameras with this name.
        status: one status or several.
        offset: jobs to skip.
        limit: page size, 1 to 500.
    """
    conditions: list[ColumnElement[bool]] = []
    if site is not None:
        conditions.append(Camera.site == site)
    if camera is not None:
        conditions.append(Camera.name == camera)
    if isinstance(status, JobStatus):
        conditions.append(Job.status == status)
    elif status is not None:
        conditions.append(Job.status.in_(list(status)))

    return page_of(
        session,
        select(Job)
        .join(Job.camera)
        .options(contains_eager(Job.camera))
        .where(*conditions)
        .order_by(Job.created_at.desc(), Job.id),
        select(func.count(Job.id)).join(Job.camera).where(*conditions),
        offset=offset,
        limit=limit,
        max_size=MAX_PAGE_SIZE,
    )


def delete_job(session: Session, job_id: str) -> bool:
    """Delete a job row; its frames, faces and segments go with it (ON DELETE CASCADE).

    One SQL DELETE, so the database cascades (SQLite too: storage.db turns foreign keys
    on), and a worker still writing to the job meets a missing parent, not a live one.
    Returns whether the job existed.
    """
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        delete(Job).where(Job.id == job_id).execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def jobs_with_uploads_finished_before(
    session: Session, cutoff: datetime, upload_dir: str, limit: int = 500
) -> list[tuple[str, str]]:
    """(job id, input path) of finished jobs, oldest first, whose input is an upload under
    ``upload_dir`` kept since before ``cutoff`` (a CLI job's input is the user's own file)."""
    rows = session.execute(
        select(Job.id, Job.input_path)
        .where(
            Job.status.in_(list(FINISHED)),
            Job.finished_at < cutoff,
            Job.input_path.startswith(upload_dir.rstrip("/") + "/", autoescape=True),
        )
        .order_by(Job.finished_at, Job.id)
        .limit(limit)
    )
    return [(job_id, path) for job_id, path in rows]


def forget_upload(session: Session, job_id: str) -> None:
    """Record that the job's upload was deleted: its statistics stay, its footage is gone."""
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(input_path=FOOTAGE_REMOVED, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
