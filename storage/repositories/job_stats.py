"""Counts over all jobs, for monitoring."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import Job, JobStatus


def count_by_status(session: Session) -> dict[JobStatus, int]:
    """How many jobs are in each status; every status is present (0 when none)."""
    counts = dict.fromkeys(JobStatus, 0)
    for status, count in session.execute(select(Job.status, func.count()).group_by(Job.status)):
        counts[JobStatus(status)] = int(count)
    return counts
