"""`maskwatch worker` and `maskwatch requeue`: the distributed analysis workers."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer


def worker(
    queues: str = typer.Option(
        "analysis,alerts", help="Comma-separated queues to consume (alerts: webhooks)."
    ),
    concurrency: int = typer.Option(
        0, min=0, help="Pool processes (0: one per GPU when CUDA is present, else one per CPU)."
    ),
    loglevel: str = typer.Option("INFO", help="DEBUG, INFO, WARNING or ERROR."),
    hostname: str = typer.Option(None, help="Celery node name, e.g. gpu0@%h (default: celery@%h)."),
    metrics_port: int = typer.Option(
        None, min=0, max=65535,
        help="Port of the Prometheus exporter (default: MASKWATCH_WORKER_METRICS_PORT; 0: none).",
    ),
) -> None:
    """Run a Celery worker that analyses job segments from the broker (prefork pool)."""
    from maskwatch.runtime import SetupError
    from maskwatch.settings import get_settings
    from storage.db import is_up_to_date

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

    port = settings.worker_metrics_port if metrics_port is None else metrics_port
    # Before worker.celery_app imports prometheus_client: the pool's metric files go here.
    metrics_dir = _metrics_dir(settings.worker_metrics_dir) if port else None
    exporter = _start_exporter(port, queues) if port else None

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
    try:
        app.worker_main(argv)
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(timeout=10)
        if metrics_dir is not None and settings.worker_metrics_dir is None:
            from worker.metrics_files import remove_multiprocess_dir

            remove_multiprocess_dir(metrics_dir)


def _metrics_dir(configured: Path | None) -> Path:
    from worker.metrics_files import use_multiprocess_dir

    return use_multiprocess_dir(
        configured or Path(tempfile.mkdtemp(prefix="maskwatch-worker-metrics-"))
    )


def _start_exporter(port: int, queues: str) -> subprocess.Popen[bytes]:
    """The exporter process (see worker.metrics_exporter); it exits when this process does."""
    return subprocess.Popen(
        [
            sys.executable, "-m", "worker.metrics_exporter",
            "--port", str(port), "--queues", queues, "--parent", str(os.getpid()),
        ],
        stdin=subprocess.DEVNULL,
    )


def requeue(
    job_ids: Annotated[
        list[str] | None, typer.Argument(help="Jobs to send again (default: all unfinished).")
    ] = None,
) -> None:
    """Send queued and running jobs' unfinished work to the workers again.

    Workers do this by themselves when the broker loses its messages; use it after an
    outage that lost messages some other way. Sending work twice is harmless.
    """
    from maskwatch.settings import get_settings
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
