"""Celery tasks: take ids, run one step of worker.segments, commit, send the next messages."""

from __future__ import annotations

import logging
import time
from typing import Any

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from billiard.einfo import ExceptionInfo
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from storage.repositories import jobs as job_repo
from worker import events, metrics, segments
from worker.celery_app import app
from worker.dispatch import enqueue_segments
from worker.jobs import failure_reason
from worker.pipeline.analyze import AnalysisSettings
from worker.pipeline.errors import DecoderKilled, InputError
from worker.planning import WorkLimits
from worker.process import worker_process

logger = logging.getLogger(__name__)

# Faults that go away by themselves: a database or broker restarting, a lock timeout, an
# ffmpeg killed by the OOM killer.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    DecoderKilled,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
)


class AnalysisTask(Task):
    """Retries transient faults with exponential backoff; fails the job on any other error.

    Bad input never reaches here as an exception: the tasks catch InputError and fail the
    job with its message, without retrying. A segment still failing transiently after its
    retries is left to the recovery sweep; a job start is failed (`maskwatch requeue` or a
    new submission runs it again).
    """

    autoretry_for = TRANSIENT_ERRORS
    retry_backoff = 2
    retry_backoff_max = 120
    retry_jitter = True
    max_retries = 5

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: ExceptionInfo,
    ) -> None:
        job_id, segment_index = _job_and_segment(args, kwargs)
        if job_id is None:
            return
        if segment_index is not None and isinstance(exc, TRANSIENT_ERRORS):
            # Out of retries, not broken: the segment stays unfinished and the workers'
            # recovery sends it again once it has been idle for stale_after_s.
            logger.error("job %s segment %d: gave up for now: %s", job_id, segment_index, exc)
            metrics.failure(metrics.FailureKind.TRANSIENT)
            return
        if isinstance(exc, SoftTimeLimitExceeded):
            limit = self.app.conf.task_soft_time_limit
            reason = f"internal error: the task ran past its time limit ({limit} s)"
            kind = metrics.FailureKind.TIME_LIMIT
        else:
            reason = failure_reason(exc)
            kind = metrics.FailureKind.INTERNAL
        try:
            with worker_process().session_factory() as session:
                if segment_index is None:
                    failed = segments.fail_job(session, job_id, reason)
                else:
                    failed = segments.fail_segment(session, job_id, segment_index, reason, task_id)
                session.commit()
        except Exception:
            # The database is unreachable too: the job stays queued or running as it was.
            logger.exception("job %s: could not record the failure of task %s", job_id, task_id)
            metrics.failure(kind)
            return
        if failed:
            events.job_ended(job_id, "failed", kind)
        else:
            metrics.failure(kind)


def _job_and_segment(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[str | None, int | None]:
    values = list(args) + [kwargs[k] for k in ("job_id", "segment_index") if k in kwargs]
    job_id = values[0] if values else None
    segment_index = values[1] if len(values) > 1 else None
    return job_id, segment_index


@app.task(name="analysis.start_job", base=AnalysisTask, bind=True)
def start_job(self: AnalysisTask, job_id: str) -> None:
    """Probe the job's input, mark it running, plan its segments and send them out."""
    process = worker_process()
    with process.session_factory() as session:
        try:
            indices = segments.plan_job(
                session, job_id, WorkLimits.from_settings(process.settings)
            )
            session.commit()
            backlog = segments.site_backlog(session, job_id) if indices else 0
        except InputError as exc:
            session.rollback()
            logger.info("job %s failed on its input: %s", job_id, exc)
            failed = segments.fail_job(session, job_id, failure_reason(exc))
            session.commit()
            if failed:
                events.job_ended(job_id, "failed", metrics.FailureKind.INPUT)
            return
        except LookupError:
            logger.warning("job %s does not exist; nothing to start", job_id)
            return
    # After the commit: a segment task must find its row. A crash before every message is
    # out is repaired by the redelivered start, which re-sends the pending segments.
    try:
        enqueue_segments(
            job_id, indices, site_backlog=backlog, fair=process.settings.fair_share
        )
    except kombu.exceptions.OperationalError:
        # Retrying would need the same broker. The segments are stored as pending, and the
        # workers' recovery sends pending segments that wait too long (stale_after_s).
        logger.exception("job %s: the broker refused its segments; left to recovery", job_id)


@app.task(name="analysis.process_segment", base=AnalysisTask, bind=True)
def process_segment(self: AnalysisTask, job_id: str, segment_index: int) -> None:
    """Analyse one segment of a running job; the last segment to finish finalises the job."""
    process = worker_process()
    task_id = self.request.id
    with process.session_factory() as session:
        segment = segments.claim(
            session,
            job_id,
            segment_index,
            task_id=task_id,
            worker=process.name,
            stale_after_s=process.settings.stale_after_s,
            max_attempts=process.settings.segment_max_attempts,
        )
        session.commit()
        if segment is None:
            logger.info("job %s segment %d: finished, taken or unwanted", job_id, segment_index)
            return
        job = job_repo.get_job(session, job_id)
        if job is None:
            return
        models = process.models_for(AnalysisSettings.from_dict(job.settings))
        started = time.perf_counter()
        try:
            outcome = segments.analyze_claimed(
                session, job, segment, models, task_id, process.settings.segment_batch_frames
            )
        except segments.SegmentStopped as exc:
            session.rollback()
            logger.info("job %s segment %d stopped: %s", job_id, segment_index, exc)
            return
        except sqlalchemy.exc.IntegrityError:
            # A batch for a job deleted meanwhile (DELETE /v1/jobs/{id}) has no parent row.
            session.rollback()
            if segments.job_exists(session, job_id):
                raise
            logger.info("job %s segment %d stopped: the job was deleted", job_id, segment_index)
            return
        except InputError as exc:
            session.rollback()
            logger.info("job %s segment %d failed on its input: %s", job_id, segment_index, exc)
            failed = segments.fail_segment(
                session, job_id, segment_index, failure_reason(exc), task_id
            )
            session.commit()
            if failed:
                events.job_ended(job_id, "failed", metrics.FailureKind.INPUT)
            return
        metrics.segment_analysed(outcome.frames, outcome.faces, time.perf_counter() - started)
        finalised = segments.complete(session, job, segment, outcome, task_id)
        session.commit()
        if finalised:
            events.job_ended(job_id, job.status.value)
    logger.info(
        "job %s segment %d: %d frame(s), %d face(s)%s",
        job_id,
        segment_index,
        outcome.frames,
        outcome.faces,
        "; job finalised" if finalised else "",
    )
