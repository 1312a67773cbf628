"""The app as a whole: health, OpenAPI docs, and errors that never leak internals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def test_openapi_documents_every_route_and_the_bearer_scheme(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/healthz",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/frames",
        "/v1/jobs/{job_id}/tracks",
        "/v1/reports",
        "/v1/classify",
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
