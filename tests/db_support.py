"""The test databases: which backends run, and creating a PostgreSQL database per suite."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from maskwatch.core.records import FrameRecord, TrackRecord
from storage.db import upgrade
from storage.models import InputKind, Job, JobStatus
from storage.repositories import cameras as camera_repo
from storage.repositories import frames as frame_repo
from storage.repositories import jobs as job_repo
from storage.repositories import tracks as track_repo
from worker.people import finalise_tracks

POSTGRES_ADMIN_URL = os.environ.get(
    "MASKWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NO_POSTGRES = os.environ.get("MASKWATCH_TEST_NO_POSTGRES") == "1"
# Appended to every test database's name, so that two checkouts can run their suites at once.
DATABASE_SUFFIX = os.environ.get("MASKWATCH_TEST_DB_SUFFIX", "")
# The builders the storage tests' fixtures ``make_job`` and ``frame`` return.
MakeJob = Callable[..., Job]
MakeFrame = Callable[..., FrameRecord]
BACKENDS = (
    ["sqlite"]
    if NO_POSTGRES
    else ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)


def postgres_database(name: str, *, recreate: bool = False) -> str:
    """Create the PostgreSQL database ``name`` if missing (or afresh) and return its URL.

    Fails the test (rather than skipping it) when PostgreSQL cannot be reached;
    set MASKWATCH_TEST_NO_POSTGRES=1 to run the SQLite half only.
    """
    name += DATABASE_SUFFIX
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            if recreate:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            exists = connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        pytest.fail(
            f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL} ({error.orig}); "
            "set MASKWATCH_TEST_NO_POSTGRES=1 to run without it"
        )
    finally:
        admin.dispose()
    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def migrated_database(backend: str, sqlite_dir: Path, postgres_name: str) -> str:
    """A database of ``backend`` ('sqlite' or 'postgresql') migrated to head; its URL."""
    if backend == "sqlite":
        url = f"sqlite:///{sqlite_dir / 'maskwatch.sqlite3'}"
    else:
        url = postgres_database(postgres_name)
    upgrade(url)
    return url


def add_video_job(
    session: Session,
    path: Path | str,
    *,
    settings: dict[str, Any] | None = None,
    site: str = "test",
    camera: str = "cam",
    input_name: str | None = None,
    **fields: Any,
) -> Job:
    """A queued video job on ``path`` at camera ``site``/``camera`` (not committed)."""
    path = Path(path)
    return job_repo.create_job(
        session,
        camera=camera_repo.get_or_create_camera(session, site, camera),
        input_kind=InputKind.VIDEO,
        input_path=str(path),
        input_name=input_name or path.name,
        settings=settings or {},
        **fields,
    )


def settle_job(
    session: Session,
    job: Job,
    status: JobStatus,
    frames: Sequence[FrameRecord] = (),
    *,
    frames_total: int | None = None,
    error: str = "no frame could be decoded",
    people: Sequence[TrackRecord] = (),
) -> None:
    """Take a queued job to ``status`` as a worker would: running with ``frames_total``
    (default: as many as ``frames``), ``frames`` and the tracks of ``people`` stored (a
    face whose track_key names one of them refers to its track), then finished (not
    committed)."""
    if status is JobStatus.QUEUED:
        return
    total = len(frames) if frames_total is None else frames_total
    job_repo.mark_running(session, job, frames_total=total)
    track_ids = track_repo.save_tracks(session, job, people, {}) if people else {}
    if frames:
        frame_repo.replace_frames(session, job, list(frames), track_ids=track_ids)
        job_repo.add_progress(session, job.id, len(frames))
    if people:
        finalise_tracks(session, job)
    if status is JobStatus.SUCCEEDED:
        job_repo.mark_succeeded(session, job)
    elif status is JobStatus.FAILED:
        job_repo.mark_failed(session, job, error)
    elif status is JobStatus.CANCELLED:
        job_repo.mark_cancelled(session, job)
