"""Job segments: planning rows, claiming by one task at a time, progress and completion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from storage.models import Camera, FrameStat, Job, JobSegment, JobStatus, SegmentStatus, utcnow
from storage.repositories import jobs as job_repo

MAX_ERROR_CHARS = 2000
FINISHED = frozenset({SegmentStatus.SUCCEEDED, SegmentStatus.FAILED, SegmentStatus.CANCELLED})
UNFINISHED = frozenset({SegmentStatus.PENDING, SegmentStatus.RUNNING})


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """A segment named the way tasks name it: by its job and its index."""

    job_id: str
    segment_index: int
    site: str = ""  # the job's camera's site, by which workers are shared fairly


def create_segments(
    session: Session, job_id: str, ranges: Sequence[tuple[float, float | None]]
) -> list[JobSegment]:
    """Add one pending segment per (start_s, end_s) range, indexed in order from 0."""
    now = utcnow()
    segments = [
        JobSegment(
            job_id=job_id,
            segment_index=index,
            start_s=start_s,
            end_s=end_s,
            status=SegmentStatus.PENDING,
            attempts=0,
            frames_done=0,
            created_at=now,
            updated_at=now,
        )
        for index, (start_s, end_s) in enumerate(ranges)
    ]
    session.add_all(segments)
    session.flush()
    return segments


def list_segments(session: Session, job_id: str) -> list[JobSegment]:
    """The job's segments in index order."""
    return list(
        session.scalars(
            select(JobSegment).where(JobSegment.job_id == job_id).order_by(JobSegment.segment_index)
        )
    )


def get_segment(session: Session, job_id: str, segment_index: int) -> JobSegment | None:
    return session.scalars(
        select(JobSegment).where(
            JobSegment.job_id == job_id, JobSegment.segment_index == segment_index
        )
    ).first()


def pending_indices(session: Session, job_id: str) -> list[int]:
    """Indices of the job's segments that no task has started yet."""
    return list(
        session.scalars(
            select(JobSegment.segment_index)
            .where(JobSegment.job_id == job_id, JobSegment.status == SegmentStatus.PENDING)
            .order_by(JobSegment.segment_index)
        )
    )


def claim_segment(
    session: Session,
    job_id: str,
    segment_index: int,
    *,
    task_id: str,
    worker: str,
    stale_before: datetime,
) -> JobSegment | None:
    """Mark a segment running for ``task_id``, or return None when it must not run now.

    The claim is one conditional UPDATE, so two deliveries of work on the same segment
    cannot both win. It succeeds only while the job is running, and when the segment is
    pending; or running under the same task id (a retry, or the broker redelivering the
    message of a worker that died); or running with no heartbeat since ``stale_before``
    (its worker is gone and the message with it).
    """
    job_running = select(Job.id).where(Job.id == job_id, Job.status == JobStatus.RUNNING).exists()
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(JobSegment)
        .where(
            JobSegment.job_id == job_id,
            JobSegment.segment_index == segment_index,
            or_(
                JobSegment.status == SegmentStatus.PENDING,
                and_(
                    JobSegment.status == SegmentStatus.RUNNING,
                    or_(JobSegment.task_id == task_id, JobSegment.updated_at < stale_before),
                ),
            ),
            job_running,
        )
        .values(
            status=SegmentStatus.RUNNING,
            attempts=JobSegment.attempts + 1,
            task_id=task_id,
            worker=worker[:255],
            error=None,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:
        return None
    segment = get_segment(session, job_id, segment_index)
    if segment is not None:
        session.refresh(segment)
    return segment


def record_progress(session: Session, segment: JobSegment, frames_done: int) -> None:
    """Record that this run of the segment has stored its first ``frames_done`` frames.

    This is the segment's heartbeat too. A run replaces the rows of the runs before it
    frame for frame, in the same order, so the segment holds as many rows as its furthest
    run stored: the count only grows. The job's ``frames_done`` is the sum over its
    segments, exact when a segment runs again and cheap for long jobs (no row count).
    """
    session.execute(
        update(JobSegment)
        .where(JobSegment.id == segment.id)
        .values(
            frames_done=case(
                (JobSegment.frames_done > frames_done, JobSegment.frames_done),
                else_=frames_done,
            ),
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    stored = (
        select(func.coalesce(func.sum(JobSegment.frames_done), 0))
        .where(JobSegment.job_id == segment.job_id)
        .scalar_subquery()
    )
    session.execute(
        update(Job)
        .where(Job.id == segment.job_id)
        .values(**job_repo.progress_values(stored), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def run_state(session: Session, segment: JobSegment) -> tuple[JobStatus | None, str | None]:
    """The job's status and the task id now holding the segment (read fresh, not cached)."""
    row = session.execute(
        select(Job.status, JobSegment.task_id)
        .join(JobSegment, JobSegment.job_id == Job.id)
        .where(JobSegment.id == segment.id)
    ).first()
    return (None, None) if row is None else (row[0], row[1])


def finish_segment(
    session: Session,
    segment: JobSegment,
    status: SegmentStatus,
    *,
    frames_done: int | None = None,
    error: str | None = None,
    task_id: str | None = None,
) -> bool:
    """Record how a running segment's run ended; False if it was not running (any more).

    Args:
        task_id: only write if the segment still runs under this task (it was not taken
            over meanwhile).
    """
    if status not in FINISHED:
        raise ValueError(f"{status} is not a final segment status")
    values: dict[str, Any] = {
        "status": status,
        "updated_at": utcnow(),
        "error": None if error is None else error[:MAX_ERROR_CHARS],
    }
    if frames_done is not None:
        values["frames_done"] = frames_done
    query = update(JobSegment).where(
        JobSegment.id == segment.id, JobSegment.status == SegmentStatus.RUNNING
    )
    if task_id is not None:
        query = query.where(JobSegment.task_id == task_id)
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        query.values(**values).execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def lock_job_status(session: Session, job_id: str) -> JobStatus | None:
    """The job's status, with its row locked until the transaction ends (PostgreSQL).

    Every segment finisher takes this lock before counting unfinished segments, so of two
    segments finishing at once the second sees the first as done. SQLite needs no lock:
    it has one writer at a time, and finishers write before they count.
    """
    return session.scalar(select(Job.status).where(Job.id == job_id).with_for_update())


def count_unfinished(session: Session, job_id: str) -> int:
    return (
        session.scalar(
            select(func.count(JobSegment.id)).where(
                JobSegment.job_id == job_id, JobSegment.status.in_(UNFINISHED)
            )
        )
        or 0
    )


def cancel_unfinished(session: Session, job_id: str, reason: str | None = None) -> int:
    """Mark the job's pending and running segments cancelled; returns how many.

    A task still running one of them notices at its next batch and stops.
    """
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(JobSegment)
        .where(JobSegment.job_id == job_id, JobSegment.status.in_(UNFINISHED))
        .values(status=SegmentStatus.CANCELLED, error=reason, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def count_job_frames(session: Session, job_id: str) -> int:
    return session.scalar(select(func.count(FrameStat.id)).where(FrameStat.job_id == job_id)) or 0


def set_frames_done(session: Session, job_id: str, frames_done: int) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(**job_repo.progress_values(frames_done), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def queued_job_ids(session: Session) -> list[str]:
    """Jobs waiting for a worker to plan them, oldest first."""
    query = select(Job.id).where(Job.status == JobStatus.QUEUED).order_by(Job.created_at)
    return list(session.scalars(query))


def unfinished_segments(session: Session, job_id: str | None = None) -> list[SegmentRef]:
    """Pending and running segments of running jobs (of one job if ``job_id`` is given)."""
    query = (
        select(JobSegment.job_id, JobSegment.segment_index, Camera.site)
        .join(Job, Job.id == JobSegment.job_id)
        .join(Camera, Camera.id == Job.camera_id)
        .where(Job.status == JobStatus.RUNNING, JobSegment.status.in_(UNFINISHED))
    )
    if job_id is not None:
        query = query.where(JobSegment.job_id == job_id)
    rows = session.execute(
        query.order_by(Job.created_at, JobSegment.job_id, JobSegment.segment_index)
    )
    return [SegmentRef(job_id, index, site) for job_id, index, site in rows]


def stalled_segments(session: Session, idle_before: datetime) -> list[SegmentRef]:
    """Unfinished segments of running jobs untouched since ``idle_before``.

    A running one has lost its worker (no heartbeat); a pending one has waited that long
    for a worker, or its message was never sent (the broker was down at planning time).
    """
    rows = session.execute(
        select(JobSegment.job_id, JobSegment.segment_index, Camera.site)
        .join(Job, Job.id == JobSegment.job_id)
        .join(Camera, Camera.id == Job.camera_id)
        .where(
            Job.status == JobStatus.RUNNING,
            JobSegment.status.in_(UNFINISHED),
            JobSegment.updated_at < idle_before,
        )
        .order_by(Job.created_at, JobSegment.job_id, JobSegment.segment_index)
    )
    return [SegmentRef(job_id, index, site) for job_id, index, site in rows]


def site_backlog(session: Session, job_id: str) -> int:
    """Pending segments of the other running jobs at this job's site: what waits before it."""
    site = select(Camera.site).join(Job, Job.camera_id == Camera.id).where(Job.id == job_id)
    return (
        session.scalar(
            select(func.count(JobSegment.id))
            .join(Job, Job.id == JobSegment.job_id)
            .join(Camera, Camera.id == Job.camera_id)
            .where(
                Camera.site == site.scalar_subquery(),
                Job.id != job_id,
                Job.status == JobStatus.RUNNING,
                JobSegment.status == SegmentStatus.PENDING,
            )
        )
        or 0
    )
