"""API fixtures: the app on SQLite and PostgreSQL, each test inside a transaction rolled back."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.deps import LazyModels
from maskwatch.core.records import FrameRecord, TrackRecord
from maskwatch.settings import Settings
from storage.models import Job, JobStatus
from storage.repositories import api_keys as key_repo
from tests.api.api_support import (
    BACKENDS,
    POSTGRES_DATABASE,
    Keys,
    ModelLoader,
    Queue,
)
from tests.db_support import add_video_job, migrated_database, settle_job

MAX_UPLOAD_BYTES = 256 * 1024  # small, so that the oversize tests stay fast
MAX_CLASSIFY_BYTES = 128 * 1024


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database migrated to head once per session, one per backend."""
    return migrated_database(request.param, tmp_path_factory.mktemp("apidb"), POSTGRES_DATABASE)


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """One connection whose outer transaction is rolled back after the test."""
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


@pytest.fixture
def session_factory(connection: Connection) -> sessionmaker[Session]:
    """Sessions on the test's connection: their commits become savepoints, rolled back later."""
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """The test's own session, for setting up rows and looking at what requests left."""
    db_session = session_factory()
    try:
        yield db_session
    finally:
        db_session.close()


@pytest.fixture
def upload_dir(tmp_path: Path) -> Path:
    # Two levels below tmp_path, so that a traversal to ../../x would land inside tmp_path.
    return tmp_path / "srv" / "data" / "uploads"


@pytest.fixture
def settings(database_url: str, upload_dir: Path, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        upload_dir=upload_dir,
        max_upload_bytes=MAX_UPLOAD_BYTES,
        max_classify_bytes=MAX_CLASSIFY_BYTES,
        checkpoint=tmp_path / "no-such-checkpoint.pt",
        broker_url="redis://127.0.0.1:1/0",  # never used: enqueue is a recorder here
    )


# ----------------------------------------------------------------------------- fakes


@pytest.fixture
def queue(session_factory: sessionmaker[Session]) -> Queue:
    return Queue(session_factory)


@pytest.fixture
def model_loader() -> ModelLoader:
    return ModelLoader()


@pytest.fixture
def app_factory(
    settings: Settings,
    session_factory: sessionmaker[Session],
    queue: Queue,
    model_loader: ModelLoader,
) -> Callable[..., Any]:
    def build(**overrides: Any) -> Any:
        app_settings = overrides.pop("settings", settings)
        arguments: dict[str, Any] = {
            "session_factory": session_factory,
            "enqueue": queue.enqueue,
            "models": LazyModels(model_loader),
        } | overrides
        return create_app(app_settings, **arguments)

    return build


@pytest.fixture
def client(app_factory: Callable[..., Any]) -> Iterator[TestClient]:
    with TestClient(app_factory(), raise_server_exceptions=False) as test_client:
        yield test_client


# ------------------------------------------------------------------------------ data


@pytest.fixture
def keys(session: Session) -> Keys:
    _, admin = key_repo.create_api_key(session, "ops", is_admin=True)
    _, all_sites = key_repo.create_api_key(session, "dashboard")
    _, north = key_repo.create_api_key(session, "north-nvr", site="north")
    _, south = key_repo.create_api_key(session, "south-nvr", site="south")
    old, revoked = key_repo.create_api_key(session, "old", site="north")
    key_repo.revoke_api_key(session, old)
    session.commit()
    return Keys(admin, all_sites, north, south, revoked)


@pytest.fixture
def make_job(session: Session) -> Callable[..., Job]:
    """A committed job at ``site``/``camera`` in ``status``, with ``frames`` and ``people``
    (tracks) stored."""

    def build(
        site: str = "north",
        camera: str = "gate",
        status: JobStatus = JobStatus.QUEUED,
        frames: list[FrameRecord] | None = None,
        recorded_at: datetime = datetime(2024, 3, 1, 9, 0, tzinfo=UTC),
        error: str = "boom",
        people: list[TrackRecord] | None = None,
    ) -> Job:
        job = add_video_job(
            session,
            "/nonexistent/in.mp4",
            input_name="entrance.mp4",
            settings={"sample_fps": 5.0},
            site=site,
            camera=camera,
            recorded_at=recorded_at,
        )
        settle_job(session, job, status, frames or [], people=people or [], error=error)
        session.commit()
        return job

    return build


# ----------------------------------------------------------------------------- media


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=60)


@pytest.fixture(scope="session")
def video_bytes(media_dir: Path) -> bytes:
    """A 1 s, 160x120, 5 fps H.264 test pattern (about 10 kB)."""
    path = media_dir / "pattern.mp4"
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=5:duration=1",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        str(path),
    )
    return path.read_bytes()


@pytest.fixture(scope="session")
def audio_bytes(media_dir: Path) -> bytes:
    """A 0.2 s tone in an MP4 (M4A) container: an accepted format without a video stream."""
    path = media_dir / "tone.m4a"
    _ffmpeg("-f", "lavfi", "-i", "sine=duration=0.2", str(path))
    return path.read_bytes()


@pytest.fixture(scope="session")
def playlist_bytes(media_dir: Path, video_bytes: bytes) -> bytes:
    """An HLS playlist naming a real video on the server: it must never be read."""
    target = media_dir / "server-side.mp4"
    target.write_bytes(video_bytes)
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1,\n{target}\n#EXT-X-ENDLIST\n".encode()


@pytest.fixture(scope="session")
def image_bytes(media_dir: Path) -> bytes:
    """A 200x160 PNG."""
    path = media_dir / "still.png"
    gradient = np.linspace(0, 255, 200 * 160 * 3).astype(np.uint8).reshape(160, 200, 3)
    Image.fromarray(gradient).save(path)
    return path.read_bytes()
