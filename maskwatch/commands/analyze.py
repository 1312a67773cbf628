"""`maskwatch analyze`: footage in, compliance report out, on the embedded database or any URL."""

from __future__ import annotations

import importlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

# Only what the options need: the analysis itself (rich, SQLAlchemy, torch) is imported when
# the command runs, so that `maskwatch --help` and the API commands start without it.
from maskwatch.core.analysis import FAST_DETECTOR_WEIGHTS
from worker.local import MIN_SPLIT_S

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.orm import Session

    from storage.models import Job

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def analyze(
    paths: list[Path] = typer.Argument(..., help="Video or image files, or folders of them."),
    camera: str = typer.Option("default", help="Camera name the footage comes from."),
    site: str = typer.Option("local", help="Site the camera belongs to."),
    sample_fps: float = typer.Option(None, help="Frames analysed per second of video."),
    min_face_size: int = typer.Option(None, help="Smallest face searched for, in pixels."),
    db: str = typer.Option(None, help="Database URL (default: MASKWATCH_DATABASE_URL)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    worst: int = typer.Option(5, help="How many worst moments to list per input."),
    fast: bool = typer.Option(
        False, "--fast", help=f"Run one detector ({FAST_DETECTOR_WEIGHTS}) instead of the "
        "merged pair: 1.4-2x the speed, fewer masked faces found (docs/model-card.md).",
    ),
    annotated_video: Path = typer.Option(
        None, "--annotated-video", dir_okay=False, help="Also write the analysed frames with "
        "each face's box and label drawn to this H.264 .mp4 (one input only).",
    ),
    blur_faces: bool = typer.Option(
        False, "--blur-faces", help="Blur every face in the annotated video (boxes and labels "
        "kept).",
    ),
    processes: int = typer.Option(
        min(2, os.cpu_count() or 1), help="Processes (one torch thread each) a video of "
        f"{MIN_SPLIT_S:g} s or more is split over; 1 runs it whole in this process.",
    ),
    exhaustive: bool = typer.Option(
        False, "--exhaustive", help="Detect and classify every sampled frame, even where the "
        "scene did not change (the reference the default's skipping is measured against).",
    ),
) -> None:
    """Analyse footage: detect every face, classify its mask, store per-frame statistics."""
    started = _process_age_s()
    setup_start = time.perf_counter()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    from maskwatch.runtime import (
        SetupError,
        analysis_settings,
        expand_inputs,
        models_for,
        open_database,
    )
    from maskwatch.settings import get_settings
    from storage.models import InputKind, JobStatus
    from storage.repositories import cameras as camera_repo
    from storage.repositories import jobs as job_repo
    from worker.local import run_job_in_parts
    from worker.report import build_report

    from .render import render_report

    settings = get_settings()
    url = db or settings.database_url
    console = Console(stderr=as_json)
    try:
        analysis = analysis_settings(
            settings, sample_fps=sample_fps, min_face_size=min_face_size,
            detector_weights=FAST_DETECTOR_WEIGHTS if fast else None,
            exhaustive=exhaustive or None,
        )
        session_factory = open_database(url, auto_upgrade=url.startswith("sqlite"))
    except (SetupError, ValueError) as exc:
        raise _usage_error(console, str(exc)) from exc

    inputs = expand_inputs(paths)
    if not inputs:
        raise _usage_error(console, "no input files found")
    if annotated_video is not None and len(inputs) != 1:
        raise _usage_error(console, f"--annotated-video takes one input, not {len(inputs)}")
    with session_factory() as session:
        cam = camera_repo.get_or_create_camera(session, site=site, name=camera)
        job_ids = [
            job_repo.create_job(
                session,
                camera=cam,
                input_kind=(
                    InputKind.IMAGE if p.suffix.lower() in IMAGE_SUFFIXES else InputKind.VIDEO
                ),
                input_path=str(p),
                input_name=p.name,
                settings=analysis.to_dict(),
            ).id
            for p in inputs
        ]
        session.commit()

    load_start = time.perf_counter()
    setup_s = load_start - setup_start
    importlib.import_module("worker.pipeline.analyze")  # torch: timed apart from the load

    torch_import_s = time.perf_counter() - load_start
    try:
        models = models_for(settings, analysis)
    except SetupError as exc:
        raise _usage_error(console, str(exc)) from exc
    load_s = time.perf_counter() - load_start - torch_import_s
    analysis_start = time.perf_counter()

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=as_json,
    ) as progress:
        for job_id, path in zip(job_ids, inputs, strict=True):
            task = progress.add_task(path.name[:40], total=None)

            def advance(done: int, total: int | None, task: TaskID = task) -> None:
                progress.update(task, completed=done, total=total)

            run_job_in_parts(
                session_factory,
                url,
                job_id,
                models,
                checkpoint=settings.checkpoint,
                device=settings.device,
                processes=processes,
                on_progress=advance,
            )
            finished = next(t for t in progress.tasks if t.id == task).completed or 1
            progress.update(
                task,
                total=finished,
                completed=finished,
            )

    analysis_s = time.perf_counter() - analysis_start
    with session_factory() as session:
        jobs = [job_repo.get_job(session, job_id) for job_id in job_ids]
        report = build_report(session, [j for j in jobs if j is not None], worst=worst)
        if annotated_video is not None:
            _write_video(session, jobs[0], inputs[0], annotated_video, blur_faces, console)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render_report(console, report)
    Console(stderr=True).print(
        f"[dim]start-up {_seconds(started)} (interpreter and CLI imports) · database and jobs "
        f"{setup_s:.2f} s · torch import {torch_import_s:.2f} s · model load {load_s:.2f} s · "
        f"analysis {analysis_s:.2f} s[/dim]",
        soft_wrap=True,
    )
    if any(j.status != JobStatus.SUCCEEDED.value for j in report.jobs):
        raise typer.Exit(1)


def _process_age_s() -> float | None:
    """Seconds since this process started (Linux; None elsewhere): interpreter and imports
    when read as a command begins."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime_s = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime_s - start_ticks / os.sysconf("SC_CLK_TCK"))


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _usage_error(console: Console, message: str) -> typer.Exit:
    """Print ``message`` as one line (never wrapped, never read as markup); exit status 2."""
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(2)


def _write_video(
    session: Session, job: Job | None, footage: Path, out: Path, blur: bool, console: Console
) -> None:
    """Write the job's annotated video; a failure is reported and sets exit status 1."""
    from rich.console import Console

    from storage.models import JobStatus
    from worker.evidence import write_job_video
    from worker.pipeline.errors import InputError
    from worker.pipeline.render import EncodeError

    if job is None or job.status is not JobStatus.SUCCEEDED:
        console.print(f"[yellow]no annotated video:[/yellow] {footage.name} was not analysed")
        return
    try:
        frames = write_job_video(session, job, footage, out, blur=blur)
    except (InputError, TimeoutError, EncodeError) as exc:
        console.print(f"[red]error:[/red] annotated video not written: {exc}")
        raise typer.Exit(1) from exc
    Console(stderr=True).print(f"annotated video: {out} ({frames} frames)")


def register(app: typer.Typer) -> None:
    app.command()(analyze)
