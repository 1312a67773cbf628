"""Running one job on several cores of this machine: its segments in processes of one thread.

Two analyses at once with one torch thread each get more done than one with two threads
(waiting OpenMP threads busy-spin, and on a shared machine they spin against each other), so
the embedded path (the CLI) splits a long video into segments as the distributed workers do:
this process analyses the first, spawned processes the others, and the job is finalised here
(tracks stitched) once all are stored.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maskwatch.core.analysis import AnalysisSettings

# The job service (SQLAlchemy, the pipeline, torch) is imported where a job runs: the CLI
# imports this module for its options, and `maskwatch --help` must not pay for them.
if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from storage.models import Job
    from worker.jobs import ProgressCallback, Segment
    from worker.pipeline.analyze import Models

logger = logging.getLogger(__name__)

# Shorter videos run whole: a spawned process' start-up and model load cost more than half
# of such a video's analysis saves.
MIN_SPLIT_S = 20.0

_CHILD: dict[str, Any] = {}


def _start_child(database_url: str, checkpoint: str, device: str, settings: dict[str, Any]) -> None:
    from storage.db import make_engine, make_session_factory
    from worker.pipeline.analyze import load_models

    _CHILD["factory"] = make_session_factory(make_engine(database_url))
    _CHILD["models"] = load_models(
        AnalysisSettings.from_dict(settings), Path(checkpoint), device, threads=1
    )


def _analyze_part(job_id: str, start_s: float, end_s: float | None, index: int) -> int:
    from worker.jobs import Segment, analyze_segment, existing_job

    factory: sessionmaker[Session] = _CHILD["factory"]
    with factory() as session:
        job = existing_job(session, job_id)
        # End the read: on SQLite (WAL) a transaction that read before another process
        # wrote cannot write later ("database is locked"); each batch begins its own.
        session.commit()
        part = Segment(start_s, end_s, index)
        return analyze_segment(session, job, _CHILD["models"], part).frames


def run_job_in_parts(
    session_factory: sessionmaker[Session],
    database_url: str,
    job_id: str,
    models: Models,
    *,
    checkpoint: Path,
    device: str = "cpu",
    processes: int = 2,
    on_progress: ProgressCallback | None = None,
) -> Job:
    """Analyse a job here and in ``processes - 1`` spawned processes, one segment each.

    Images, short videos and ``processes`` < 2 run whole in this process (``run_job``).
    Torch runs with one thread here while the parts run. Failures are recorded on the job
    as ``run_job`` records them.
    """
    from storage.repositories import jobs as job_repo
    from worker.jobs import Segment, existing_job, failing_job_on_error, finish_job, run_job
    from worker.pipeline.decode import estimate_sample_count, probe
    from worker.pipeline.errors import InputError
    from worker.planning import plan_ranges

    with session_factory() as session:
        job = existing_job(session, job_id)
        try:
            info = probe(Path(job.input_path), job.input_name)
        except InputError:
            info = None
        duration = info.duration_s if info is not None and info.kind == "video" else None
        if processes < 2 or duration is None or duration < MIN_SPLIT_S:
            return run_job(session_factory, job_id, models, on_progress)
        assert info is not None
        settings = AnalysisSettings.from_dict(job.settings)
        parts = plan_ranges(duration, duration / processes)
        ranges = [Segment(p.start_s, p.end_s, i) for i, p in enumerate(parts)]
        with failing_job_on_error(session, job):
            expected = estimate_sample_count(info, settings.sample_fps)
            job_repo.mark_running(session, job, expected)
            session.commit()
            with _one_torch_thread():
                _run_parts(session, job, models, ranges, database_url, checkpoint, device,
                           _progress_of(session, job, expected, on_progress))
            session.refresh(job)
            finish_job(session, job)
            session.commit()
        return job


def _progress_of(
    session: Session, job: Job, expected: int | None, on_progress: ProgressCallback | None
) -> Callable[[int, int | None], None] | None:
    """Progress over all parts: the job's stored frame count, read after each own batch."""
    if on_progress is None:
        return None

    def report(_done: int, _expected: int | None) -> None:
        session.refresh(job)
        session.commit()  # no read left open while the next batch is analysed (see above)
        on_progress(job.frames_done, expected)

    return report


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Torch on one thread in this process for the block: the other parts run in the others."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _run_parts(
    session: Session,
    job: Job,
    models: Models,
    ranges: list[Segment],
    database_url: str,
    checkpoint: Path,
    device: str,
    on_progress: ProgressCallback | None,
) -> None:
    from worker.jobs import analyze_segment

    with ProcessPoolExecutor(
        max_workers=len(ranges) - 1,
        # spawn: torch's threads do not survive a fork
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_child,
        initargs=(database_url, str(checkpoint), device, dict(job.settings)),
    ) as pool:
        futures = [
            pool.submit(_analyze_part, job.id, r.start_s, r.end_s, r.index) for r in ranges[1:]
        ]
        try:
            analyze_segment(session, job, models, ranges[0], on_progress=on_progress)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        for future in futures:
            future.result()  # re-raises a part's InputError or crash here
