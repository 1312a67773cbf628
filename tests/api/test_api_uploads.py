"""/v1/jobs and /v1/classify take a file the same way: api/uploads.py reads the form and
api/errors.media_error words what cannot be used. What they refuse they refuse alike, naming
the file as it was uploaded, and they keep nothing: no file, no job, nothing queued."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.api.api_support import Keys, Queue, bearer, count_jobs, files_under

JOBS, CLASSIFY = "/v1/jobs", "/v1/classify"
#: The form fields each route needs besides the file.
FIELDS: dict[str, dict[str, str]] = {JOBS: {"camera": "gate"}, CLASSIFY: {}}
CLIP = ("a.mp4", b"\0" * 64)


def assert_nothing_kept(tmp_path: Path, session: Session, queue: Queue) -> None:
    assert files_under(tmp_path) == []
    assert count_jobs(session) == 0
    assert queue.enqueued == []


@pytest.mark.parametrize("route", [JOBS, CLASSIFY])
@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"files": {"other": ("a.txt", b"x")}}, 422, "unexpected file field 'other'"),
        ({"files": {"camera2": (None, "x")}}, 422, "no file in form field 'file'"),
        ({"files": [("file", CLIP), ("file", CLIP)]}, 422, "send exactly one file in field 'file'"),
        ({"json": {"camera": "gate"}}, 415, "send the file as multipart/form-data"),
    ],
    ids=["other-file-field", "no-file", "two-files", "json"],
)
def test_a_form_of_the_wrong_shape_is_refused(
    client: TestClient,
    keys: Keys,
    session: Session,
    queue: Queue,
    tmp_path: Path,
    route: str,
    body: dict[str, Any],
    status: int,
    detail: str,
) -> None:
    data = FIELDS[route] if "files" in body else None
    response = client.post(route, headers=bearer(keys.north), data=data, **body)
    assert (response.status_code, response.json()) == (status, {"detail": detail})
    assert_nothing_kept(tmp_path, session, queue)


TEXT = b"just some text\n" * 50


@pytest.mark.parametrize(
    ("route", "content", "name", "status", "reason"),
    [
        (JOBS, TEXT, "notes.mp4", 415, "notes.mp4: not a readable video or image file"),
        (JOBS, "audio_bytes", "tone.mp4", 415, "tone.mp4: contains only audio, no video stream"),
        (JOBS, b"", "empty.mp4", 422, "empty.mp4: file is empty (0 bytes)"),
        (JOBS, "playlist_bytes", "x.mp4", 415, "x.mp4: format 'hls' is not accepted (accepted:"),
        (CLASSIFY, TEXT, "notes.png", 415, "notes.png: "),  # ffprobe words it by version
        (CLASSIFY, "video_bytes", "clip.png", 422, "clip.png: is a video, not an image"),
        (CLASSIFY, b"", "none.png", 422, "none.png: file is empty (0 bytes)"),
    ],
)
def test_what_cannot_be_used_is_refused_with_the_reason(
    client: TestClient,
    keys: Keys,
    session: Session,
    queue: Queue,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    route: str,
    content: bytes | str,
    name: str,
    status: int,
    reason: str,
) -> None:
    if isinstance(content, str):  # the name of the fixture that makes it
        content = request.getfixturevalue(content)
    response = client.post(
        route, headers=bearer(keys.north), data=FIELDS[route], files={"file": (name, content)}
    )
    assert response.status_code == status
    detail = response.json()["detail"]
    assert detail.startswith(reason)
    assert not re.search(r"[0-9a-f]{32}", detail)  # our stored name never shows
    assert str(tmp_path) not in detail
    assert_nothing_kept(tmp_path, session, queue)
