"""The Celery app shared by senders (the API, the CLI) and the workers: broker and reliability
settings only. What a worker process holds, and the signals that build it, are in
worker.process, which only the workers load (through the app's ``include``)."""

from __future__ import annotations

from celery import Celery

from maskwatch.settings import Settings, get_settings

DEFAULT_QUEUE = "analysis"
# Redis keeps a list per message priority, "<queue><sep><band>" (band 0 is the queue's own
# name) and serves band 0 first: worker.dispatch bands segments to share workers by site.
PRIORITY_STEPS = list(range(10))
PRIORITY_SEP = "\x06\x16"  # kombu's Redis default, spelled out for worker.dispatch
HARD_LIMIT_GRACE_S = 60  # the hard time limit kills the process this long after the soft one


def configure(app: Celery, settings: Settings) -> None:
    """Apply MaskWatch's broker, serialisation and reliability settings to ``app``."""
    app.conf.update(
        broker_url=settings.broker_url,
        broker_connection_retry_on_startup=True,
        # Redis hands an unacknowledged message to another worker after this long, so it
        # must exceed the longest task (see Settings' validator).
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "priority_steps": PRIORITY_STEPS,
            "sep": PRIORITY_SEP,
        },
        task_default_queue=DEFAULT_QUEUE,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        # Outcomes live in the jobs table; nothing reads Celery results.
        task_ignore_result=True,
        # Tasks are idempotent: acknowledge after running, and hand the message back when
        # the process running it dies, so a crash never loses a segment.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_time_limit_s,
        task_time_limit=settings.task_time_limit_s + HARD_LIMIT_GRACE_S,
        # A lost broker connection must not cancel analyses in progress: they write to the
        # database, not to the broker, and finish (their acks are lost, the work is not).
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=True,
    )


def create_app(settings: Settings) -> Celery:
    """A configured app; workers and senders in one deployment must agree on the settings."""
    # The workers import worker.tasks (and through it worker.process) at start-up.
    celery = Celery(
        "maskwatch", include=["worker.tasks", "worker.alert_tasks"], set_as_current=False
    )
    configure(celery, settings)
    return celery


app = create_app(get_settings())
app.set_current()

# Importing this module stays cheap (no torch, no connection, no signal handlers): the API
# imports it to send.
