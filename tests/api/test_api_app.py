"""The app as a whole: health, OpenAPI docs, and errors that never leak internals."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import LazyModels
from maskwatch.settings import Settings
from tests.api.api_support import Keys, bearer, files_under


def test_healthz_is_503_when_the_database_is_down(tmp_path: Path) -> None:
    settings = Settings(
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", upload_dir=tmp_path
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/healthz")
    assert (response.status_code, response.json()) == (503, {"detail": "database unreachable"})


def test_requests_while_the_database_is_down_are_503_with_retry_after(tmp_path: Path) -> None:
    """A client that gets this retries (the fault runs of docs/deployment.md saw a 500)."""
    settings = Settings(
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", upload_dir=tmp_path
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.get("/v1/jobs", headers=bearer("mw_any-key"))
    assert (response.status_code, response.json()) == (
        503, {"detail": "the database is unavailable; try again"}
    )  # fmt: skip
    assert response.headers["retry-after"] == "5"


def test_openapi_documents_every_route_and_the_bearer_scheme(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/healthz",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/cancel",
        "/v1/jobs/{job_id}/frames",
        "/v1/jobs/{job_id}/tracks",
        "/v1/jobs/{job_id}/frames/{frame_index}/evidence.jpg",
        "/v1/jobs/{job_id}/annotated-video",
        "/v1/jobs/{job_id}/annotated-video.mp4",
        "/v1/reports",
        "/v1/classify",
        "/v1/alerts/rules",
        "/v1/alerts/rules/{rule_id}",
        "/v1/alerts/deliveries",
    }
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    upload = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["schema"]["required"] == ["file", "camera"]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    assert spec["paths"]["/v1/jobs"]["get"]["security"] == [{"HTTPBearer": []}]


def test_unexpected_errors_are_500_without_details(
    app_factory: Callable[..., Any], keys: Keys, image_bytes: bytes, tmp_path: Path
) -> None:
    def broken() -> Any:
        raise RuntimeError("secret internal path /srv/models")

    app = app_factory(models=LazyModels(broken))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(
            "/v1/classify", headers=bearer(keys.admin), files={"file": ("a.png", image_bytes)}
        )
    assert response.status_code == 500
    assert response.content == b'{"detail":"internal server error"}'
    assert files_under(tmp_path) == []


def test_unknown_routes_answer_json(client: TestClient) -> None:
    response = client.get("/v2/nothing")
    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/v1/jobs", "GET, POST"),
        ("PUT", "/v1/jobs", "GET, POST"),
        ("OPTIONS", "/v1/jobs/0123456789abcdef0123456789abcdef", "DELETE, GET"),
        ("PATCH", "/v1/jobs/0123456789abcdef0123456789abcdef", "DELETE, GET"),
        ("OPTIONS", "/v1/jobs/0123456789abcdef0123456789abcdef/frames", "GET"),
        ("OPTIONS", "/v1/classify", "POST"),
        ("DELETE", "/healthz", "GET"),
    ],
)
def test_405_lists_every_method_of_the_path(
    client: TestClient, keys: Keys, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path, headers=bearer(keys.admin))
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json() == {"detail": "Method Not Allowed"}


def test_openapi_declares_the_400_and_the_form_constraints(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/v1/jobs", "/v1/classify"):
        operation = spec["paths"][path]["post"]
        assert "400" in operation["responses"], f"malformed multipart to {path} gets a 400"
        form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert form["additionalProperties"] is False  # unknown fields are refused (422)
    form = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    properties = form["schema"]["properties"]
    for name in ("camera", "site"):
        assert (properties[name]["minLength"], properties[name]["maxLength"]) == (1, 100)
        pattern = re.compile(properties[name]["pattern"])
        assert pattern.match("gate 3") and pattern.match(" north ")
        assert not pattern.match("   ") and not pattern.match("ga\nte")
    assert properties["detector"]["enum"] == ["accurate", "fast"]
    assert "1970-01-01T00:00:00Z" in properties["recorded_at"]["description"]


def test_malformed_multipart_gets_the_documented_400(client: TestClient, keys: Keys) -> None:
    response = client.post(
        "/v1/jobs",
        headers={**bearer(keys.admin), "content-type": "multipart/form-data; boundary=xyz"},
        content=b"--xyz\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--xyz--\r\n",
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "malformed multipart body: a part has no name"}
