"""What follows a job's end, once its final status is committed: metrics, then alerts."""

from __future__ import annotations

import logging

import kombu.exceptions

from worker import metrics
from worker.celery_app import app

logger = logging.getLogger(__name__)

#: Alert work has a queue of its own, so that a webhook never waits behind long analyses
#: in the "analysis" queue; `maskwatch worker` consumes both by default.
ALERTS_QUEUE = "alerts"
EVALUATE_JOB = "alerts.evaluate_job"
DELIVER_WEBHOOK = "alerts.deliver_webhook"
RENDER_VIDEO = "evidence.render_video"  # on the analysis queue: it decodes and encodes


def job_ended(job_id: str, status: str, failure: metrics.FailureKind | None = None) -> None:
    """Count a job a worker finished (succeeded or failed) and check its alert rules.

    Call after the commit that ended it. A broker refusing the message loses only the
    alerts of this job (logged), never the job's outcome.
    """
    metrics.job_finished(status)
    if failure is not None:
        metrics.failure(failure)
    try:
        app.send_task(EVALUATE_JOB, args=[job_id], queue=ALERTS_QUEUE)
    except kombu.exceptions.OperationalError:
        logger.exception("job %s: could not send its alert evaluation", job_id)


def send_delivery(delivery_id: int, countdown_s: float | None = None) -> None:
    app.send_task(DELIVER_WEBHOOK, args=[delivery_id], queue=ALERTS_QUEUE, countdown=countdown_s)


def send_video(job_id: str) -> None:
    """Ask a worker to render the job's requested annotated video (the request is committed)."""
    app.send_task(RENDER_VIDEO, args=[job_id])
