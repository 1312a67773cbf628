"""Schemathesis: generated requests against the OpenAPI schema; no 500s, answers as documented."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.deps import LazyModels
from maskwatch.settings import Settings
from storage.db import make_engine, make_session_factory, upgrade
from storage.models import Job
from storage.repositories import api_keys as key_repo
from tests.api.api_support import BACKENDS, ModelLoader, bearer, postgres_database

pytestmark = pytest.mark.slow  # generated requests against every operation (seconds)

# Few by default to keep `make test` quick; raise it for a deeper run.
EXAMPLES_PER_OPERATION = int(os.environ.get("MASKWATCH_FUZZ_EXAMPLES", "10"))


@pytest.fixture(scope="module", params=BACKENDS)
def fuzz_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, str, Path, sessionmaker[Session]]]:
    """The app on a database of its own, committed to (Hypothesis reruns the test body)."""
    work = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        url = f"sqlite:///{work / 'fuzz.sqlite3'}"
    else:
        url = postgres_database("maskwatch_api_fuzz", recreate=True)
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    session: Session
    with factory() as session:
        _, key = key_repo.create_api_key(session, "fuzz", is_admin=True)
        session.commit()
    app = create_app(
        Settings(
            database_url=url,
            upload_dir=work / "uploads",
            max_upload_bytes=64 * 1024,
            max_classify_bytes=64 * 1024,
            checkpoint=work / "missing.pt",
            # Generated webhook hosts are not looked up in DNS (no network in tests).
            alert_private_targets=True,
        ),
        session_factory=factory,
        enqueue=lambda job_id: None,
        models=LazyModels(ModelLoader()),
    )
    yield app, key, work / "uploads", factory
    engine.dispose()


OPERATIONS = [
    ("GET", "/healthz"),
    ("GET", "/v1/jobs"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs/{job_id}"),
    ("DELETE", "/v1/jobs/{job_id}"),
    ("POST", "/v1/jobs/{job_id}/cancel"),
    ("GET", "/v1/jobs/{job_id}/frames"),
    ("GET", "/v1/jobs/{job_id}/tracks"),
    ("GET", "/v1/jobs/{job_id}/frames/{frame_index}/evidence.jpg"),
    ("POST", "/v1/jobs/{job_id}/annotated-video"),
    ("GET", "/v1/jobs/{job_id}/annotated-video"),
    ("GET", "/v1/jobs/{job_id}/annotated-video.mp4"),
    ("GET", "/v1/reports"),
    ("POST", "/v1/classify"),
    ("GET", "/v1/alerts/rules"),
    ("POST", "/v1/alerts/rules"),
    ("GET", "/v1/alerts/rules/{rule_id}"),
    ("DELETE", "/v1/alerts/rules/{rule_id}"),
    ("GET", "/v1/alerts/deliveries"),
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_operation_answers_as_documented(
    fuzz_app: tuple[Any, str, Path, sessionmaker[Session]], method: str, path: str
) -> None:
    app, key, uploads, factory = fuzz_app
    operation = schemathesis.openapi.from_asgi("/openapi.json", app)[path][method]
    # A schema cannot say "a video", "site unless the key has one" or "to after from":
    # such requests fit the schema and are still refused (415, 422), as they should be.
    excluded = [positive_data_acceptance] if method == "POST" or path == "/v1/reports" else []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case: Any) -> None:
        case.call_and_validate(headers=bearer(key), excluded_checks=excluded)

    answers_as_documented()
    # Whatever was sent, no /v1/classify upload is left on disk, and every stored upload
    # belongs to a job: a refused submission leaves no file behind.
    stored = {p for p in uploads.rglob("*") if p.is_file()}
    assert [p for p in stored if p.parent.name == "classify"] == []
    with factory() as session:
        job_inputs = {Path(p) for p in session.scalars(select(Job.input_path))}
    assert stored <= job_inputs


def test_the_schema_lists_exactly_these_operations(
    fuzz_app: tuple[Any, str, Path, sessionmaker[Session]],
) -> None:
    spec = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app[0]).raw_schema
    found = {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops}
    assert found == set(OPERATIONS)
