"""`maskwatch worker` and `maskwatch requeue`: the distributed analysis workers."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from maskwatch.runtime import SetupError
from maskwatch.settings import get_settings
from storage.db import is_up_to_date


def worker(
    queues: str = typer.Option("analysis", help="Comma-separated queues to consume."),
    concurrency: int = typer.Option(
        0, min=0, help="Pool processes (0: one per GPU when CUDA is present, else one per CPU)."
    ),
    loglevel: str = typer.Option("INFO", help="DEBUG, INFO, WARNING or ERROR."),
    hostname: str = typer.Option(None, help="Celery node name, e.g. gpu0@%h (default: celery@%h)."),
) -> None:
    """Run a Celery worker that analyses job segments from the broker (prefork pool)."""
    settings = get_settings()
    try:
        if not settings.broker_url.startswith(("redis://", "rediss://")):
            raise SetupError("MASKWATCH_BROKER_URL must be a redis:// or rediss:// URL")
        if not is_up_to_date(settings.database_url):
            raise SetupError("the database schema is not up to date: run `maskwatch db upgrade`")
        if not settings.checkpoint.is_file():
            raise SetupError(f"classifier checkpoint missing: {settings.checkpoint}")
    except SetupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc

    from worker.celery_app import app
    from worker.pipeline.device import visible_gpu_count

    processes = concurrency or visible_gpu_count() or os.cpu_count() or 1
    # Pool processes read it in worker_process_init to pick one torch thread each.
    app.conf.worker_concurrency = processes
    argv = [
        "worker",
        f"--loglevel={loglevel}",
        f"--concurrency={processes}",
        f"--queues={queues}",
        "--pool=prefork",
        # No remote control or revokes are used: skip the start-up sync and the chatter.
        "--without-mingle",
        "--without-gossip",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)


def requeue(
    job_ids: Annotated[
        list[str] | None, typer.Argument(help="Jobs to send again (default: all unfinished).")
    ] = None,
) -> None:
    """Send queued and running jobs' unfinished work to the workers again.

    Workers do this by themselves when the broker loses its messages; use it after an
    outage that lost messages some other way. Sending work twice is harmless.
    """
    from storage.db import make_engine, make_session_factory
    from worker.dispatch import requeue as requeue_work

    engine = make_engine(get_settings().database_url)
    try:
        with make_session_factory(engine)() as session:
            found = requeue_work(session, job_ids or None, fair=get_settings().fair_share)
    finally:
        engine.dispose()
    typer.echo(f"sent {len(found.jobs)} job start(s) and {len(found.segments)} segment(s)")


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command()(requeue)
