"""Database fixtures: every storage test runs on SQLite and on PostgreSQL, rolled back after."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from maskwatch.core.records import FaceRecord, FrameRecord
from storage.models import Camera, InputKind, Job, JobStatus
from storage.repositories.cameras import get_or_create_camera
from storage.repositories.jobs import (
    create_job,
    mark_cancelled,
    mark_failed,
    mark_running,
    mark_succeeded,
)
from tests.db_support import (
    BACKENDS,
    MakeFrame,
    MakeJob,
    migrated_database,
    postgres_database,
)

POSTGRES_TEST_DATABASE = "maskwatch_test"
POSTGRES_SCRATCH_DATABASE = "maskwatch_test_migrations"


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database migrated to head once per test session, one per backend."""
    return migrated_database(request.param, tmp_path_factory.mktemp("db"), POSTGRES_TEST_DATABASE)


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, never-migrated database per test, for migration tests that commit."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'scratch' / 'maskwatch.sqlite3'}"
    return postgres_database(POSTGRES_SCRATCH_DATABASE, recreate=True)


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test.

    Code under test may commit or use savepoints; with ``create_savepoint`` those stay
    inside the outer transaction.
    """
    with engine.connect() as connection:
        transaction = connection.begin()
        db_session = Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield db_session
        finally:
            db_session.close()
            transaction.rollback()


@pytest.fixture
def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


@pytest.fixture
def camera(session: Session) -> Camera:
    return get_or_create_camera(session, "north-gate", "cam-1")


@pytest.fixture
def make_job(session: Session, camera: Camera) -> MakeJob:
    """Build a job; keyword arguments override create_job's arguments or set the status."""

    def build(
        *, status: JobStatus = JobStatus.QUEUED, cam: Camera | None = None, **overrides: Any
    ) -> Job:
        arguments: dict[str, Any] = {
            "camera": cam or camera,
            "input_kind": InputKind.VIDEO,
            "input_path": "/var/uploads/abc.mp4",
            "input_name": "entrance.mp4",
            "settings": {"sample_fps": 5.0},
            "recorded_at": datetime(2024, 3, 1, 9, 0, tzinfo=UTC),
        } | overrides
        job = create_job(session, **arguments)
        if status is not JobStatus.QUEUED:
            mark_running(session, job, frames_total=10)
        if status is JobStatus.SUCCEEDED:
            mark_succeeded(session, job)
        elif status is JobStatus.FAILED:
            mark_failed(session, job, "boom")
        elif status is JobStatus.CANCELLED:
            mark_cancelled(session, job)
        return job

    return build


def _frame(
    index: int,
    *,
    timestamp_s: float | None = None,
    masked: int = 0,
    unmasked: int = 0,
    incorrect: int = 0,
    detections: list[FaceRecord] | None = None,
) -> FrameRecord:
    """A FrameRecord whose faces = masked + unmasked + incorrect; timestamp defaults to index s."""
    return FrameRecord(
        frame_index=index,
        timestamp_s=float(index) if timestamp_s is None else timestamp_s,
        faces=masked + unmasked + incorrect,
        masked=masked,
        unmasked=unmasked,
        incorrect=incorrect,
        detections=detections or [],
    )


@pytest.fixture
def frame() -> MakeFrame:
    """The FrameRecord builder, as a fixture so test modules need not import conftest."""
    return _frame
