"""What follows a job's end, once its final status is committed: metrics, then alerts."""

from __future__ import annotations

import logging

from worker import metrics

logger = logging.getLogger(__name__)


def job_ended(job_id: str, status: str, failure: metrics.FailureKind | None = None) -> None:
    """Count a job a worker finished (succeeded or failed); call after the commit."""
    metrics.job_finished(status)
    if failure is not None:
        metrics.failure(failure)
