"""Bearer keys: every endpoint but /healthz refuses a missing, wrong or revoked key."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from storage.models import Job, JobStatus
from tests.api.api_support import Keys, bearer, count_jobs, files_under

MISSING_BODY = b'{"detail":"missing API key: send \'Authorization: Bearer <key>\'"}'
INVALID_BODY = b'{"detail":"invalid or revoked API key"}'
NOT_FOUND_BODY = b'{"detail":"job not found"}'
SOME_JOB = "0123456789abcdef0123456789abcdef"

PROTECTED = [
    ("GET", "/v1/jobs"),
    ("POST", "/v1/jobs"),
    ("GET", f"/v1/jobs/{SOME_JOB}"),
    ("DELETE", f"/v1/jobs/{SOME_JOB}"),
    ("POST", f"/v1/jobs/{SOME_JOB}/cancel"),
    ("GET", f"/v1/jobs/{SOME_JOB}/frames"),
    ("GET", "/v1/reports"),
    ("POST", "/v1/classify"),
]


def test_healthz_needs_no_key(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}],
    ids=["no-header", "basic-scheme", "empty-bearer"],
)
def test_missing_key_is_401_with_bearer_challenge(
    client: TestClient, keys: Keys, method: str, path: str, headers: dict[str, str]
) -> None:
    response = client.request(method, path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/json"
    assert response.content == MISSING_BODY


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("which", ["wrong", "revoked", "truncated"])
def test_wrong_or_revoked_key_is_401_invalid_token(
    client: TestClient, keys: Keys, method: str, path: str, which: str
) -> None:
    key = {"wrong": "mw_" + "x" * 43, "revoked": keys.revoked, "truncated": keys.north[:-1]}[which]
    response = client.request(method, path, headers=bearer(key))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.content == INVALID_BODY


def test_rejected_keys_are_not_logged(
    client: TestClient, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    client.get("/v1/jobs", headers=bearer(keys.revoked))
    client.get("/v1/jobs", headers=bearer(keys.north))
    assert "rejected an invalid or revoked API key" in caplog.text
    for key in (keys.revoked, keys.north):
        assert key not in caplog.text
        assert key[3:15] not in caplog.text


def test_other_sites_job_is_404_like_a_missing_one(
    client: TestClient, keys: Keys, make_job: Callable[..., Job]
) -> None:
    job = make_job(site="south", status=JobStatus.SUCCEEDED)
    for path in (f"/v1/jobs/{job.id}", f"/v1/jobs/{job.id}/frames"):
        hidden = client.get(path, headers=bearer(keys.north))
        missing = client.get(path.replace(job.id, SOME_JOB), headers=bearer(keys.north))
        assert (hidden.status_code, hidden.content) == (404, NOT_FOUND_BODY)
        assert (missing.status_code, missing.content) == (404, NOT_FOUND_BODY)
        assert client.get(path, headers=bearer(keys.south)).status_code == 200
        assert client.get(path, headers=bearer(keys.all_sites)).status_code == 200


def test_other_sites_job_cannot_be_cancelled_or_deleted(
    client: TestClient, keys: Keys, make_job: Callable[..., Job], session: Session
) -> None:
    job = make_job(site="south")
    response = client.post(f"/v1/jobs/{job.id}/cancel", headers=bearer(keys.north))
    assert (response.status_code, response.content) == (404, NOT_FOUND_BODY)
    response = client.delete(f"/v1/jobs/{job.id}", headers=bearer(keys.north))
    assert (response.status_code, response.content) == (404, NOT_FOUND_BODY)
    session.expire_all()
    assert session.get(Job, job.id).status is JobStatus.QUEUED  # type: ignore[union-attr]


def test_site_key_lists_only_its_sites_jobs(
    client: TestClient, keys: Keys, make_job: Callable[..., Job]
) -> None:
    north = make_job(site="north")
    make_job(site="south")
    own = client.get("/v1/jobs", headers=bearer(keys.north)).json()
    assert [item["id"] for item in own["items"]] == [north.id]
    assert own["total"] == 1
    other = client.get("/v1/jobs", params={"site": "south"}, headers=bearer(keys.north)).json()
    assert other == {"items": [], "total": 0}
    everything = client.get("/v1/jobs", headers=bearer(keys.admin)).json()
    assert everything["total"] == 2


def test_site_key_cannot_submit_for_another_site(
    client: TestClient, keys: Keys, session: Session, upload_dir: object, video_bytes: bytes
) -> None:
    response = client.post(
        "/v1/jobs",
        headers=bearer(keys.north),
        data={"camera": "gate", "site": "south"},
        files={"file": ("clip.mp4", video_bytes, "video/mp4")},
    )
    assert response.status_code == 403
    assert response.content == b'{"detail":"this key may only submit for site \'north\'"}'
    assert files_under(upload_dir) == []  # type: ignore[arg-type]
    assert count_jobs(session) == 0
