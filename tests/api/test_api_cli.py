"""`maskwatch keys`, `submit` and `jobs show`, with the API served in-process."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from maskwatch.cli import app as cli
from maskwatch.settings import get_settings
from storage.db import make_engine, make_session_factory
from storage.models import ApiKey
from storage.repositories import api_keys as key_repo
from storage.repositories import frames as frame_repo
from storage.repositories import jobs as job_repo
from tests.api.api_support import Keys, Queue, frame

KEY = re.compile(r"mw_[A-Za-z0-9_-]{43}")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def cli_db(tmp_path: Path) -> Iterator[tuple[str, sessionmaker[Session]]]:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    engine = make_engine(url)
    yield url, make_session_factory(engine)
    engine.dispose()


def test_keys_create_prints_the_key_once_and_stores_its_hash(
    runner: CliRunner, cli_db: tuple[str, sessionmaker[Session]]
) -> None:
    url, factory = cli_db
    result = runner.invoke(
        cli, ["keys", "create", "--name", "north-nvr", "--site", "north", "--db", url]
    )
    assert result.exit_code == 0, result.output
    plaintext = result.stdout.strip()
    assert KEY.fullmatch(plaintext)
    assert "site north" in result.stderr and plaintext not in result.stderr
    with factory() as session:
        [stored] = session.scalars(select(ApiKey)).all()
        assert (stored.name, stored.site, stored.is_admin) == ("north-nvr", "north", False)
        assert stored.key_hash == key_repo.hash_key(plaintext)
        assert key_repo.authenticate(session, plaintext) is not None
    admin = runner.invoke(cli, ["keys", "create", "--name", "ops", "--admin", "--db", url])
    assert admin.exit_code == 0
    with factory() as session:
        assert key_repo.authenticate(session, admin.stdout.strip()).is_admin  # type: ignore[union-attr]


def test_keys_create_refuses_site_and_admin_together(
    runner: CliRunner, cli_db: tuple[str, sessionmaker[Session]]
) -> None:
    url, factory = cli_db
    result = runner.invoke(
        cli, ["keys", "create", "--name", "x", "--site", "a", "--admin", "--db", url]
    )
    assert result.exit_code == 2
    assert "error: --site and --admin exclude each other" in result.stderr


def test_keys_revoke(runner: CliRunner, cli_db: tuple[str, sessionmaker[Session]]) -> None:
    url, factory = cli_db
    plaintext = runner.invoke(cli, ["keys", "create", "--name", "x", "--db", url]).stdout.strip()
    with factory() as session:
        key_id = key_repo.authenticate(session, plaintext).id  # type: ignore[union-attr]
    assert runner.invoke(cli, ["keys", "revoke", str(key_id), "--db", url]).exit_code == 0
    with factory() as session:
        assert key_repo.authenticate(session, plaintext) is None
    assert runner.invoke(cli, ["keys", "revoke", "999", "--db", url]).exit_code == 1


@pytest.fixture
def served(app_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The CLI's httpx.Client talks to the app in-process; yields the base URLs it was given."""
    app = app_factory()
    urls: list[str] = []

    def in_process(base_url: str, headers: dict[str, str], timeout: Any) -> TestClient:
        urls.append(base_url)
        return TestClient(app, base_url=base_url, headers=headers)

    monkeypatch.setattr(httpx, "Client", in_process)
    yield urls


@pytest.fixture
def worker_stand_in(queue: Queue, session_factory: sessionmaker[Session]) -> None:
    """On enqueue, 'analyse' the job at once: two frames, then succeeded."""

    def run(job_id: str) -> None:
        with session_factory() as session:
            job = job_repo.get_job(session, job_id)
            assert job is not None
            job_repo.mark_running(session, job, frames_total=2)
            frame_repo.replace_frames(session, job, [frame(0, 0.0, 3, 1), frame(5, 1.0, 2, 0, 1)])
            job_repo.add_progress(session, job.id, 2)
            job_repo.mark_succeeded(session, job)
            session.commit()

    queue.on_enqueue = run


@pytest.mark.usefixtures("worker_stand_in")
def test_submit_wait_prints_the_finished_job(
    runner: CliRunner, served: list[str], keys: Keys, tmp_path: Path, video_bytes: bytes
) -> None:
    clip = tmp_path / "door cam.mp4"
    clip.write_bytes(video_bytes)
    result = runner.invoke(
        cli,
        [
            "submit",
            str(clip),
            "--camera",
            "door",
            "--api",
            "http://api.test:8000/",
            "--key",
            keys.north,
            "--wait",
            "--poll",
            "0",
            "--recorded-at",
            "2024-03-01T09:00:00Z",
        ],
    )
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert served == ["http://api.test:8000"]
    assert (job["status"], job["site"], job["camera"], job["input_name"]) == (
        "succeeded",
        "north",
        "door",
        "door cam.mp4",
    )
    assert job["recorded_at"] == "2024-03-01T09:00:00Z"
    assert job["summary"] == {
        "frames": 2,
        "frames_with_faces": 2,
        "faces": 7,
        "masked": 5,
        "unmasked": 1,
        "incorrect": 1,
        "compliance_ratio": 0.7143,
        "people": {  # the job was stored without tracks
            "total": 0,
            "masked": 0,
            "unmasked": 0,
            "incorrect": 0,
            "compliance_ratio": None,
            "ever_unmasked": 0,
            "seconds_compliance_ratio": None,
        },
    }
    assert "succeeded 2/2 frames" in result.stderr
    assert keys.north not in result.output

    shown = runner.invoke(
        cli, ["jobs", "show", job["id"], "--api", "http://api.test:8000", "--key", keys.north]
    )
    assert shown.exit_code == 0
    assert json.loads(shown.stdout) == job


def test_submit_without_wait_prints_the_queued_job(
    runner: CliRunner,
    served: list[str],
    keys: Keys,
    tmp_path: Path,
    video_bytes: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(video_bytes)
    monkeypatch.setenv("MASKWATCH_API_KEY", keys.admin)
    monkeypatch.setenv("MASKWATCH_API_URL", "http://from-env.test")
    get_settings.cache_clear()
    try:
        result = runner.invoke(cli, ["submit", str(clip), "--camera", "c", "--site", "s"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "queued"
    assert served == ["http://from-env.test"]


def test_submit_asks_for_the_fast_detector(
    runner: CliRunner,
    served: list[str],
    keys: Keys,
    tmp_path: Path,
    video_bytes: bytes,
    session_factory: sessionmaker[Session],
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(video_bytes)
    args = ["submit", str(clip), "--camera", "c", "--key", keys.north]
    result = runner.invoke(cli, [*args, "--detector", "fast"])
    assert result.exit_code == 0, result.output
    with session_factory() as session:
        job = job_repo.get_job(session, json.loads(result.stdout)["id"])
        assert job is not None and job.settings["detector_weights"] == "mtcnn_finetuned.pt"

    refused = runner.invoke(cli, [*args, "--detector", "fastest"])
    assert refused.exit_code == 1
    assert "detector must be one of: accurate, fast" in refused.stderr


def test_submit_reports_the_servers_reason(
    runner: CliRunner, served: list[str], keys: Keys, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n")
    wrong_key = runner.invoke(cli, ["submit", str(notes), "--camera", "c", "--key", "mw_nope"])
    assert wrong_key.exit_code == 1
    assert wrong_key.stderr == "error: 401 Unauthorized: invalid or revoked API key\n"
    not_media = runner.invoke(cli, ["submit", str(notes), "--camera", "c", "--key", keys.north])
    assert not_media.exit_code == 1
    assert not_media.stderr.startswith(
        "error: 415 Unsupported Media Type: notes.mp4: not a readable video or image file"
    )
    unknown = runner.invoke(cli, ["jobs", "show", "deadbeef", "--key", keys.north])
    assert unknown.exit_code == 1
    assert unknown.stderr == "error: 404 Not Found: job not found\n"
    traversal = runner.invoke(cli, ["jobs", "show", "../../etc", "--key", keys.north])
    assert traversal.exit_code == 1  # quoted into one path segment: no such route
    assert traversal.stderr.startswith("error: 404 Not Found")


def test_submit_without_a_key_is_a_usage_error(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    monkeypatch.delenv("MASKWATCH_API_KEY", raising=False)
    get_settings.cache_clear()
    try:
        result = runner.invoke(cli, ["submit", str(clip), "--camera", "c"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert result.stderr == "error: no API key: pass --key or set MASKWATCH_API_KEY\n"


def test_jobs_cancel_then_delete(
    runner: CliRunner,
    served: list[str],
    keys: Keys,
    tmp_path: Path,
    video_bytes: bytes,
    upload_dir: Path,
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(video_bytes)
    submitted = runner.invoke(cli, ["submit", str(clip), "--camera", "c", "--key", keys.north])
    job_id = json.loads(submitted.stdout)["id"]
    assert len([p for p in upload_dir.rglob("*") if p.is_file()]) == 1

    cancelled = runner.invoke(cli, ["jobs", "cancel", job_id, "--key", keys.north])
    assert cancelled.exit_code == 0, cancelled.output
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    again = runner.invoke(cli, ["jobs", "cancel", job_id, "--key", keys.north])
    assert (again.exit_code, again.stderr) == (1, "error: 409 Conflict: job already cancelled\n")

    deleted = runner.invoke(cli, ["jobs", "delete", job_id, "--key", keys.north])
    assert (deleted.exit_code, deleted.stderr) == (0, f"deleted job {job_id}\n")
    assert [p for p in upload_dir.rglob("*") if p.is_file()] == []
    gone = runner.invoke(cli, ["jobs", "show", job_id, "--key", keys.north])
    assert (gone.exit_code, gone.stderr) == (1, "error: 404 Not Found: job not found\n")
