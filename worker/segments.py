"""A job split into time-range segments: planning them, and each step of running one."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from storage.models import Job, JobSegment, JobStatus, SegmentStatus, utcnow
from storage.repositories import jobs as job_repo
from storage.repositories import segments as segment_repo
from worker.jobs import Segment, SegmentOutcome, analyze_segment, check_analysable, finish_job
from worker.pipeline.analyze import AnalysisSettings, Models
from worker.pipeline.decode import probe
from worker.planning import WorkLimits, plan_work

logger = logging.getLogger(__name__)

# The service layer of the distributed path: worker.tasks calls these and commits, except
# in analyze_claimed, where analyze_segment commits batch by batch.

class SegmentStopped(Exception):
    """The segment's run must stop: its job is no longer running, or another task took it."""


def plan_job(session: Session, job_id: str, limits: WorkLimits) -> list[int]:
    """Probe a queued job's input, mark it running and add its segments.

    Returns the indices of the segments to enqueue. A job planned already (a redelivered
    or duplicated start) gives its still-pending segments, as their messages may have been
    lost; a finished or cancelled job gives none.

    Raises:
        LookupError: no job has this id.
        InputError: the input cannot be analysed, or is over the limits; the caller fails
            the job with the message.
    """
    # The lock makes a concurrent duplicate start wait, then see the job running.
    status = segment_repo.lock_job_status(session, job_id)
    job = job_repo.get_job(session, job_id)
    if status is None or job is None:
        raise LookupError(f"job {job_id} not found")
    if status is JobStatus.RUNNING:
        return segment_repo.pending_indices(session, job_id)
    if status is not JobStatus.QUEUED:
        return []
    settings = AnalysisSettings.from_dict(job.settings)
    info = probe(Path(job.input_path), job.input_name)
    check_analysable(info, settings)
    plan = plan_work(info, settings, limits, name=job.input_name)
    job_repo.mark_running(session, job, plan.samples)
    segment_repo.create_segments(session, job_id, [(r.start_s, r.end_s) for r in plan.segments])
    logger.info(
        "job %s: %d segment(s), %d frame(s) to analyse", job_id, len(plan.segments), plan.samples
    )
    return list(range(len(plan.segments)))


def job_exists(session: Session, job_id: str) -> bool:
    return job_repo.job_exists(session, job_id)


def site_backlog(session: Session, job_id: str) -> int:
    """Segments of the job's site waiting before its own (see worker.dispatch.fair_band)."""
    return segment_repo.site_backlog(session, job_id)


def fail_job(session: Session, job_id: str, reason: str) -> bool:
    """Fail a queued or running job and cancel its unfinished segments; False if it had ended."""
    status = segment_repo.lock_job_status(session, job_id)
    job = job_repo.get_job(session, job_id)
    if job is None or status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        return False
    job_repo.mark_failed(session, job, reason)
    segment_repo.cancel_unfinished(session, job_id, "job failed")
    return True


def claim(
    session: Session,
    job_id: str,
    segment_index: int,
    *,
    task_id: str,
    worker: str,
    stale_after_s: float,
    max_attempts: int,
) -> JobSegment | None:
    """Take the segment for this task, or None when it must not run (see claim_segment).

    A segment started more than ``max_attempts`` times fails its job instead: a segment
    that kills its worker (out of memory, a crash in native code) would otherwise be
    redelivered for ever.
    """
    segment = segment_repo.claim_segment(
        session,
        job_id,
        segment_index,
        task_id=task_id,
        worker=worker,
        stale_before=utcnow() - timedelta(seconds=stale_after_s),
    )
    if segment is None or segment.attempts <= max_attempts:
        return segment
    reason = (
        f"segment {segment_index} ({_describe(segment)}) was started {segment.attempts - 1} "
        "times without finishing; its worker process keeps dying (out of memory?)"
    )
    segment_repo.finish_segment(session, segment, SegmentStatus.FAILED, error=reason)
    fail_job(session, job_id, reason)
    return None


def analyze_claimed(
    session: Session,
    job: Job,
    segment: JobSegment,
    models: Models,
    task_id: str,
    batch_frames: int = 25,
) -> SegmentOutcome:
    """Analyse a claimed segment, committing batch by batch.

    After each batch the job's status and the segment's holder are read again; the run
    stops with SegmentStopped when the job was cancelled or failed, or the segment was
    taken over, so a cancelled job is never written to for more than one batch.
    """

    def record_progress(batch_session: Session, frames_done: int) -> None:
        segment_repo.record_progress(batch_session, segment, frames_done)

    def check_still_wanted(_done: int, _expected: int | None) -> None:
        status, holder = segment_repo.run_state(session, segment)
        if status is not JobStatus.RUNNING:
            raise SegmentStopped(f"job {job.id} is {status.value if status else 'gone'}")
        if holder != task_id:
            raise SegmentStopped(f"segment {segment.segment_index} was taken over by {holder}")

    return analyze_segment(
        session,
        job,
        models,
        Segment(segment.start_s, segment.end_s, segment.segment_index),
        on_progress=check_still_wanted,
        batch_frames=batch_frames,
        record_progress=record_progress,
    )


def complete(
    session: Session, job: Job, segment: JobSegment, outcome: SegmentOutcome, task_id: str
) -> bool:
    """Record a finished segment; the last one to finish finalises the job. True if this did.

    Finishers serialise on the job row (``lock_job_status``) and count unfinished segments
    under that lock, so exactly one of them sees none left; ``finish_job``'s conditional
    status update would refuse a second finalisation anyway. Nothing is recorded when the
    segment was cancelled or taken over by another task meanwhile.
    """
    finished = segment_repo.finish_segment(
        session, segment, SegmentStatus.SUCCEEDED, frames_done=outcome.frames, task_id=task_id
    )
    if not finished:
        return False
    status = segment_repo.lock_job_status(session, job.id)
    if status is not JobStatus.RUNNING or segment_repo.count_unfinished(session, job.id):
        return False
    # Exact whatever ran twice: the stored rows, not the sum of the runs' counters.
    segment_repo.set_frames_done(session, job.id, segment_repo.count_job_frames(session, job.id))
    session.refresh(job)
    finish_job(session, job)
    logger.info("job %s finished: %s", job.id, job.status.value)
    return True


def fail_segment(
    session: Session, job_id: str, segment_index: int, reason: str, task_id: str | None = None
) -> bool:
    """Record a segment that cannot be analysed, and fail its job with the reason.

    Returns whether the job was failed by this call (False if it had already ended).
    """
    segment = segment_repo.get_segment(session, job_id, segment_index)
    if segment is not None:
        segment_repo.finish_segment(
            session, segment, SegmentStatus.FAILED, error=reason, task_id=task_id
        )
    return fail_job(session, job_id, reason)


def _describe(segment: JobSegment) -> str:
    end = "end" if segment.end_s is None else f"{segment.end_s:g} s"
    return f"{segment.start_s:g} s to {end}"
