"""Celery tasks beside the analysis: alerts (evaluate an ended job's rules, deliver one
webhook with retries) and evidence (render a requested annotated video)."""

from __future__ import annotations

import logging

from celery import Task

from worker import alerts, evidence
from worker.celery_app import app
from worker.events import DELIVER_WEBHOOK, EVALUATE_JOB, RENDER_VIDEO, send_delivery
from worker.process import worker_process
from worker.tasks import TRANSIENT_ERRORS

logger = logging.getLogger(__name__)


class AlertTask(Task):
    """Retries a database or broker outage with backoff; webhook retries are ours (below)."""

    autoretry_for = TRANSIENT_ERRORS
    retry_backoff = 2
    retry_backoff_max = 120
    retry_jitter = True
    max_retries = 5


@app.task(name=EVALUATE_JOB, base=AlertTask, bind=True)
def evaluate_job(self: AlertTask, job_id: str) -> None:
    """Record the deliveries an ended job sets off, then send each to deliver_webhook."""
    with worker_process().session_factory() as session:
        pending = alerts.evaluate_job(session, job_id)
        session.commit()
    for delivery_id in pending:
        send_delivery(delivery_id)


@app.task(name=DELIVER_WEBHOOK, base=AlertTask, bind=True)
def deliver_webhook(self: AlertTask, delivery_id: int) -> None:
    """POST one delivery; a retryable failure sends this task again after the backoff.

    The retry is a new message with a countdown rather than ``self.retry``: the attempt
    count lives in the delivery row, so a redelivered or duplicated message changes nothing
    once the delivery has been made or has failed.
    """
    settings = worker_process().settings
    with worker_process().session_factory() as session:
        attempted = alerts.deliver(
            session,
            delivery_id,
            max_attempts=settings.alert_max_attempts,
            retry_base_s=settings.alert_retry_base_s,
            timeout_s=settings.alert_timeout_s,
            allow_private=settings.alert_private_targets,
        )
        session.commit()
    if attempted is not None and attempted.retry_in_s is not None:
        send_delivery(delivery_id, attempted.retry_in_s)


@app.task(name=RENDER_VIDEO, base=AlertTask, bind=True)
def render_video(self: AlertTask, job_id: str) -> None:
    """Render a job's requested annotated video into the upload folder."""
    process = worker_process()
    with process.session_factory() as session:
        evidence.render_requested_video(session, job_id, process.settings.upload_dir)
