"""Sending analysis work to the workers: enqueue and cancel jobs, re-send work the broker lost."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import redis
from celery import Celery
from sqlalchemy.orm import Session

from maskwatch.settings import Settings
from storage.models import Job, JobStatus, utcnow
from storage.repositories import jobs as job_repo
from storage.repositories import segments as segment_repo
from worker.celery_app import DEFAULT_QUEUE, PRIORITY_SEP, PRIORITY_STEPS, app

logger = logging.getLogger(__name__)

# Messages carry ids only (a job id, a segment index); the task reads the rest from the
# database, so a message sent twice, or again later, does no harm.
START_JOB = "analysis.start_job"
PROCESS_SEGMENT = "analysis.process_segment"

# Present while the broker keeps its data; gone after a restart without persistence or a
# flush, which is exactly when queued messages were lost.
EPOCH_KEY = "maskwatch:broker-epoch"
SWEEP_LOCK_KEY = "maskwatch:stalled-sweep"
RESENT_KEY = "maskwatch:resent:{job_id}:{segment_index}"

# Fair sharing between sites: Redis keeps one list per priority band (celery_app sets the
# transport's priority_steps to these), and a worker takes from band 0 first. A segment's
# band grows with the number of its site's segments queued ahead of it: 0 for the first,
# 1 for the next two, 2 for the next four... A site with a backlog of hundreds thus waits
# behind the first segments of a site that has none, instead of before all of them.
PRIORITY_BANDS = len(PRIORITY_STEPS)
START_PRIORITY = 0  # planning is quick, and tells the scheduler what a job holds


def fair_band(position: int) -> int:
    """The priority band of a segment with ``position`` of its site's segments before it."""
    return min(PRIORITY_BANDS - 1, (position + 1).bit_length() - 1)


def enqueue_job(job_id: str, *, celery: Celery | None = None) -> None:
    """Ask a worker to plan the job and start its segments (the job must be committed).

    Args:
        celery: the app to send with; the one configured from the settings by default.

    Raises:
        kombu.exceptions.OperationalError: the broker cannot be reached.
    """
    (celery or app).send_task(START_JOB, args=[job_id], priority=START_PRIORITY)


def enqueue_segments(
    job_id: str,
    segment_indices: Iterable[int],
    *,
    site_backlog: int = 0,
    fair: bool = True,
    celery: Celery | None = None,
) -> int:
    """Send one process_segment message per segment; returns how many were sent.

    Args:
        site_backlog: segments of the job's site already waiting (``fair_band``).
        fair: False sends every segment in band 0: one first-come-first-served queue.
    """
    sent = 0
    for index in segment_indices:
        priority = fair_band(site_backlog + sent) if fair else 0
        (celery or app).send_task(PROCESS_SEGMENT, args=[job_id, index], priority=priority)
        sent += 1
    return sent


def send_again(
    refs: Sequence[segment_repo.SegmentRef], *, fair: bool = True, celery: Celery | None = None
) -> None:
    """Send segments again, each site's in the order given, banded among themselves."""
    positions: dict[str, int] = {}
    for ref in refs:
        position = positions.get(ref.site, 0)
        positions[ref.site] = position + 1
        priority = fair_band(position) if fair else 0
        (celery or app).send_task(
            PROCESS_SEGMENT, args=[ref.job_id, ref.segment_index], priority=priority
        )


def queued_messages(client: redis.Redis, queue: str = DEFAULT_QUEUE) -> int:
    """Messages waiting in the broker's ``queue``, all priority bands together."""
    keys = [queue] + [f"{queue}{PRIORITY_SEP}{band}" for band in range(1, PRIORITY_BANDS)]
    return sum(int(client.llen(key)) for key in keys)


def cancel_job(session: Session, job: Job) -> None:
    """Cancel a queued or running job (the caller commits).

    Segment tasks read the job's status after every stored batch and stop there; a segment
    not yet started is skipped. Nothing flips a cancelled job back.

    Raises:
        InvalidJobTransition: the job had already succeeded, failed or been cancelled.
    """
    job_repo.mark_cancelled(session, job)
    segment_repo.cancel_unfinished(session, job.id, "job cancelled")


@dataclass
class Requeued:
    """What a recovery or requeue sent again."""

    jobs: list[str] = field(default_factory=list)
    segments: list[segment_repo.SegmentRef] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.jobs or self.segments)


def requeue(
    session: Session,
    job_ids: Sequence[str] | None = None,
    *,
    fair: bool = True,
    celery: Celery | None = None,
) -> Requeued:
    """Send again the start of queued jobs and the unfinished segments of running ones.

    Duplicates are safe: a start of a planned job only re-sends its pending segments, and a
    segment that is done, or running with a live heartbeat under another task, is skipped.

    Args:
        job_ids: only these jobs; None for every queued or running job with segments.
    """
    if job_ids is None:
        queued = segment_repo.queued_job_ids(session)
        segments = segment_repo.unfinished_segments(session)
    else:
        queued, segments = [], []
        for job_id in job_ids:
            job = job_repo.get_job(session, job_id)
            if job is not None and job.status is JobStatus.QUEUED:
                queued.append(job_id)
            elif job is not None and job.status is JobStatus.RUNNING:
                segments.extend(segment_repo.unfinished_segments(session, job_id))
    for job_id in queued:
        enqueue_job(job_id, celery=celery)
    send_again(segments, fair=fair, celery=celery)
    return Requeued(jobs=queued, segments=segments)


def recover(settings: Settings) -> Requeued:
    """Re-send work the broker lost or no live worker holds; run periodically by workers.

    Two cases, checked against the Redis that serves as broker:

    - The epoch key is missing: Redis restarted without persistence (or was flushed), so
      every queued message is gone. The one worker whose SET NX recreates the key re-sends
      the start of every queued job and every unfinished segment of every running job.
    - Otherwise, at most one worker per interval (a lock key) re-sends the unfinished
      segments of running jobs untouched for ``stale_after_s``: running ones whose worker
      died with its message (a machine lost), pending ones whose message was never sent or
      that wait in a long queue; each at most once per ``stale_after_s``.
    """
    from storage.db import make_engine, make_session_factory

    client = redis.Redis.from_url(settings.broker_url)
    # Disposed before returning: the worker's main process forks pool processes, which
    # must not inherit open database connections.
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            if client.set(EPOCH_KEY, uuid.uuid4().hex, nx=True):
                try:
                    found = requeue(session, fair=settings.fair_share)
                except BaseException:
                    client.delete(EPOCH_KEY)  # let the next attempt (any worker's) redo it
                    raise
                if found:
                    logger.warning(
                        "the broker lost its messages (restarted or flushed): sent again "
                        "%d job start(s) and %d segment(s)",
                        len(found.jobs),
                        len(found.segments),
                    )
                return found
            lock_s = max(1, int(settings.recovery_interval_s))
            if not client.set(SWEEP_LOCK_KEY, 1, nx=True, ex=lock_s):
                return Requeued()
            idle_before = utcnow() - timedelta(seconds=settings.stale_after_s)
            stalled = [
                ref
                for ref in segment_repo.stalled_segments(session, idle_before)
                if client.set(
                    RESENT_KEY.format(job_id=ref.job_id, segment_index=ref.segment_index),
                    1,
                    nx=True,
                    ex=settings.stale_after_s,
                )
            ]
            send_again(stalled, fair=settings.fair_share)
            if stalled:
                logger.warning("sent again %d stalled segment(s)", len(stalled))
            return Requeued(segments=stalled)
    finally:
        engine.dispose()
        client.close()
