"""POST /v1/jobs refuses an upload holding more work than a job may, and accepts a file that
only claims to be long (the timestamps of issue 16) as the small job it is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from maskwatch.settings import Settings
from tests.api.api_support import Keys, Queue, bearer, count_jobs, files_under
from tests.fixtures.timestamps import make_sparse_video


@pytest.fixture(scope="module")
def gap_video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("gap")
    return make_sparse_video(folder / "gap.mkv", [0.0, 1_000_000.0], size=(320, 180)).read_bytes()


def submit(client: TestClient, key: str, content: bytes, name: str) -> Any:
    return client.post(
        "/v1/jobs",
        headers=bearer(key),
        data={"camera": "gate", "site": "north"},
        files={"file": (name, content, "application/octet-stream")},
    )


def test_a_file_claiming_a_million_seconds_is_accepted_as_the_two_frames_it_holds(
    client: TestClient, keys: Keys, queue: Queue, gap_video: bytes
) -> None:
    response = submit(client, keys.north, gap_video, "night.mkv")
    assert response.status_code == 201, response.text
    assert queue.enqueued == [response.json()["id"]]


def test_footage_over_the_duration_limit_is_refused_at_the_door(
    app_factory: Callable[..., Any],
    settings: Settings,
    keys: Keys,
    session: Session,
    queue: Queue,
    tmp_path: Path,
    video_bytes: bytes,
) -> None:
    # video_bytes: 1 s at 5 fps, analysed at 5 frames a second: 5 frames, over 0.5 s.
    tight = settings.model_copy(update={"max_job_duration_s": 0.5})
    with TestClient(app_factory(settings=tight), raise_server_exceptions=False) as client:
        response = submit(client, keys.north, video_bytes, "lobby cam.mp4")
    assert response.status_code == 422
    assert response.json() == {
        "detail": "lobby cam.mp4: more than 0.5 s of footage to analyse; a job may analyse "
        "at most 0.5 s: split the file into shorter ones"
    }
    assert files_under(tmp_path) == []
    assert count_jobs(session) == 0
    assert queue.enqueued == []


def test_frames_spread_over_more_segments_than_allowed_are_refused_at_the_door(
    app_factory: Callable[..., Any],
    settings: Settings,
    keys: Keys,
    session: Session,
    tmp_path: Path,
    video_bytes: bytes,
) -> None:
    tight = settings.model_copy(update={"segment_seconds": 0.2, "max_job_segments": 2})
    with TestClient(app_factory(settings=tight), raise_server_exceptions=False) as client:
        response = submit(client, keys.north, video_bytes, "door.mp4")
    assert response.status_code == 422
    assert response.json()["detail"].startswith("door.mp4: its frames are spread over 5 parts")
    assert files_under(tmp_path) == []
    assert count_jobs(session) == 0
