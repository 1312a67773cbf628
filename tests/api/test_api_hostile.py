"""The hostile-input corpus at the door: every case is refused with its reason, naming the
user's file, and leaves no file, no row and no queued message behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.api.api_support import Keys, Queue, bearer, count_jobs, files_under, multipart_body
from tests.api.conftest import MAX_UPLOAD_BYTES
from tests.fixtures.hostile import HOSTILE_FILES, HostileFile

GENERATED_NAME = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def hostile_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Outside each test's tmp_path, which must end up empty."""
    return tmp_path_factory.mktemp("hostile-media")


def _assert_refused_cleanly(
    response_status: int, detail: str, case: HostileFile, tmp_path: Path, media: Path
) -> None:
    assert (response_status, detail[: len(case.reason)]) == (case.status, case.reason), detail
    assert not GENERATED_NAME.search(detail), "the stored name never shows"
    assert str(tmp_path) not in detail and str(media) not in detail, "no server path shows"
    assert files_under(tmp_path) == [], "no upload is left on disk"


@pytest.mark.parametrize("case", HOSTILE_FILES, ids=[c.id for c in HOSTILE_FILES])
def test_submit_refuses_every_hostile_file(
    client: TestClient,
    keys: Keys,
    session: Session,
    queue: Queue,
    tmp_path: Path,
    hostile_media: Path,
    case: HostileFile,
) -> None:
    body, content_type = multipart_body(
        {"camera": "gate", "site": "north"}, case.name.encode(), case.make(hostile_media)
    )
    response = client.post(
        "/v1/jobs", headers={**bearer(keys.admin), "content-type": content_type}, content=body
    )
    _assert_refused_cleanly(
        response.status_code, response.json()["detail"], case, tmp_path, hostile_media
    )
    assert count_jobs(session) == 0 and queue.enqueued == []


@pytest.mark.parametrize("case", HOSTILE_FILES, ids=[c.id for c in HOSTILE_FILES])
def test_classify_refuses_every_hostile_file(
    client: TestClient, keys: Keys, tmp_path: Path, hostile_media: Path, case: HostileFile
) -> None:
    body, content_type = multipart_body({}, case.name.encode(), case.make(hostile_media))
    response = client.post(
        "/v1/classify", headers={**bearer(keys.admin), "content-type": content_type},
        content=body,
    )  # fmt: skip
    _assert_refused_cleanly(
        response.status_code, response.json()["detail"], case, tmp_path, hostile_media
    )


# Hostile requests rather than files: each refused before anything is stored.
HOSTILE_REQUESTS = [
    pytest.param(
        {"camera": "gate", "site": "north", "recorded_at": "9999-12-31T23:59:59Z"}, None, 422,
        "recorded_at must be from 1970-01-01T00:00:00Z up to 2100-01-01T00:00:00Z",
        id="recorded-at-year-9999",
    ),
    pytest.param(
        {"camera": "gate", "site": "north", "owner": "root"}, None, 422,
        "unknown form field(s): owner", id="unknown-field",
    ),
    pytest.param(
        {"camera": "gate\x00", "site": "north"}, None, 422,
        "camera must be 1 to 100 printable characters", id="nul-in-camera",
    ),
    pytest.param(
        {"camera": "gate", "site": "north"}, b"x" * (MAX_UPLOAD_BYTES + 1), 413,
        f"the file is larger than the limit of {MAX_UPLOAD_BYTES} bytes", id="oversized",
    ),
    pytest.param(
        {"camera": "gate", "site": "north"}, b"cut", 400,
        "malformed multipart body: it ends before its last boundary", id="body-cut-short",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("form", "content", "status", "reason"), HOSTILE_REQUESTS)
def test_submit_refuses_every_hostile_request(
    client: TestClient,
    keys: Keys,
    session: Session,
    queue: Queue,
    tmp_path: Path,
    video_bytes: bytes,
    form: dict[str, str],
    content: bytes | None,
    status: int,
    reason: str,
) -> None:
    body, content_type = multipart_body(form, b"entrance.mp4", content or video_bytes)
    if content == b"cut":
        body, content_type = multipart_body(form, b"entrance.mp4", video_bytes)
        body = body[: len(body) // 2]
    response = client.post(
        "/v1/jobs", headers={**bearer(keys.admin), "content-type": content_type}, content=body
    )
    assert (response.status_code, response.json()["detail"][: len(reason)]) == (status, reason)
    assert files_under(tmp_path) == [] and count_jobs(session) == 0 and queue.enqueued == []
