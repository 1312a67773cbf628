"""Fixtures for the distributed tests: real PostgreSQL, Redis and `maskwatch worker` processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from maskwatch.settings import Settings
from ml.footage import make_composition_video
from storage.db import make_engine, make_session_factory, upgrade
from tests.db_support import postgres_database as fresh_database
from tests.distributed.dist_support import (
    SCENES_16S,
    SCENES_20S,
    WORKER_ENV,
    Cluster,
    RedisServer,
    WorkerFleet,
)
from tests.processes import free_port, shipped_checkpoint
from worker.celery_app import create_app

# A database number of its own, flushed at the start and end of the session.
REDIS_URL = os.environ.get("MASKWATCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")


def postgres_database(name: str) -> str:
    """Create the PostgreSQL database ``name`` afresh, migrate it, and return its URL."""
    url = fresh_database(name, recreate=True)
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def classifier_checkpoint() -> Path:
    """The workers load the shipped checkpoint (or MASKWATCH_CHECKPOINT); fail loudly without."""
    return shipped_checkpoint()


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated 640x360 10 fps clips with known faces, made once per session."""
    folder = tmp_path_factory.mktemp("videos")
    return {
        "16s": make_composition_video(folder / "scene16.mp4", SCENES_16S),
        "20s": make_composition_video(folder / "scene20.mp4", SCENES_20S),
    }


# ------------------------------------------------------- the shared cluster (Redis db 5)


@pytest.fixture(scope="session")
def database_url() -> str:
    return postgres_database("maskwatch_dist_test")


@pytest.fixture(scope="session")
def session_factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.exceptions.ConnectionError as error:
        pytest.fail(f"Redis unreachable at {REDIS_URL} ({error}); run scripts/ensure-services.sh")
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def celery_client(broker_url: str, database_url: str) -> Celery:
    """A Celery app that sends to the test broker, as the API's would."""
    return create_app(Settings(broker_url=broker_url, database_url=database_url))


@pytest.fixture(scope="session")
def fleet(
    broker_url: str,
    database_url: str,
    classifier_checkpoint: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerFleet]:
    """Two workers (concurrency 1, one torch thread each) shared by the session's tests."""
    fleet = WorkerFleet(
        env={
            "MASKWATCH_DATABASE_URL": database_url,
            "MASKWATCH_BROKER_URL": broker_url,
            **WORKER_ENV,
        },
        log_dir=tmp_path_factory.mktemp("worker-logs"),
    )
    _FLEETS.append(fleet)
    try:
        fleet.start_ready("w1", "w2")
        yield fleet
    finally:
        fleet.stop_all()
        _FLEETS.remove(fleet)


@pytest.fixture
def cluster(
    fleet: WorkerFleet, session_factory: sessionmaker[Session], celery_client: Celery
) -> Cluster:
    """The session's two workers, the database they write to and the client that sends
    them jobs."""
    return Cluster(fleet, session_factory, celery_client)


# ------------------------------------------- a private Redis, for restart tests (own port)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(port=free_port(), workdir=tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_database() -> str:
    return postgres_database("maskwatch_dist_broker_test")


@pytest.fixture
def fleet_factory(
    tmp_path: Path, classifier_checkpoint: Path
) -> Iterator[Callable[..., WorkerFleet]]:
    """Make fleets on a given broker and database; every worker is stopped after the test."""
    made: list[WorkerFleet] = []

    def make(broker: str, database: str, **extra_env: str) -> WorkerFleet:
        fleet = WorkerFleet(
            env={
                "MASKWATCH_DATABASE_URL": database,
                "MASKWATCH_BROKER_URL": broker,
                **WORKER_ENV,
                **extra_env,
            },
            log_dir=tmp_path / f"worker-logs-{len(made)}",
        )
        fleet.log_dir.mkdir(parents=True, exist_ok=True)
        made.append(fleet)
        _FLEETS.append(fleet)
        return fleet

    try:
        yield make
    finally:
        for fleet in made:
            fleet.stop_all()
            _FLEETS.remove(fleet)


# -------------------------------------------------------------- worker logs on failure

_FLEETS: list[WorkerFleet] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _FLEETS:
        logs = "\n".join(fleet.logs() for fleet in _FLEETS if fleet.workers)
        report.sections.append(("worker logs", logs))
    return report
