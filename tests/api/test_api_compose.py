"""docker-compose.yml against the Compose Specification's JSON schema, and what CI relies on.

There is no Docker engine (nor compose plugin) here, so the file is checked with the official
compose-spec schema (tests/api/compose-spec.json, Apache-2.0, see compose-spec.LICENSE; the
copy vendored by the check-jsonschema 0.39.0 package) and with assertions on its services.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((Path(__file__).with_name("compose-spec.json")).read_text())
SERVICES = {"redis", "postgres", "migrate", "api", "worker-cpu", "worker-gpu", "flower"}
APP_SERVICES = ("migrate", "api", "worker-cpu", "worker-gpu")
UPLOADS = "/data/uploads"


def schema_errors(document: Any) -> list[str]:
    validator_class = jsonschema.validators.validator_for(SCHEMA)
    validator_class.check_schema(SCHEMA)
    validator = validator_class(SCHEMA)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_file_matches_the_compose_spec(compose: dict[str, Any]) -> None:
    assert schema_errors(compose) == []


@pytest.mark.parametrize(
    ("break_it", "complaint"),
    [
        (
            lambda c: c["services"]["api"].update(healthcheck={"test": "x", "every": "5s"}),
            "'every' does not match",
        ),
        (lambda c: c["services"]["api"].update(ports="8000:8000"), "is not of type 'array'"),
        (
            lambda c: c["services"]["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][
                0
            ].pop("capabilities"),
            "'capabilities' is a required property",
        ),
        (lambda c: c["services"]["redis"].update(dependson=["postgres"]), "'dependson'"),
    ],
    ids=["healthcheck-typo", "ports-not-a-list", "gpu-capabilities", "unknown-key"],
)
def test_the_validator_catches_mistakes(
    compose: dict[str, Any], break_it: Any, complaint: str
) -> None:
    broken = copy.deepcopy(compose)
    break_it(broken)
    errors = schema_errors(broken)
    assert errors and any(complaint in error for error in errors), errors


def test_every_service_is_there_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), name


def test_app_services_share_the_database_broker_and_uploads(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["MASKWATCH_DATABASE_URL"].startswith("postgresql+psycopg://"), name
        assert "@postgres:5432/" in env["MASKWATCH_DATABASE_URL"], name
        assert env["MASKWATCH_BROKER_URL"] == "redis://redis:6379/0", name
    for name in ("api", "worker-cpu", "worker-gpu"):
        service = services[name]
        assert service["environment"]["MASKWATCH_UPLOAD_DIR"] == UPLOADS, name
        assert f"uploads:{UPLOADS}" in service["volumes"], name
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert service["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert "uploads" in compose["volumes"]


def test_commands(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["maskwatch", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["api"]["command"][:2] == ["maskwatch", "serve"]
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["worker-cpu"]["command"][:2] == ["maskwatch", "worker"]
    assert services["worker-gpu"]["command"][:2] == ["maskwatch", "worker"]


def test_gpu_worker_is_opt_in_and_reserves_one_gpu(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["environment"]["MASKWATCH_DEVICE"] == "cuda"
    assert gpu["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    ]
    for name in SERVICES - {"worker-gpu", "flower"}:
        assert "profiles" not in compose["services"][name], name


def test_flower_is_opt_in_and_published_on_the_loopback_only(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    assert flower["profiles"] == ["monitoring"]
    assert flower["command"][:4] == ["celery", "-A", "worker.celery_app", "flower"]
    assert flower["environment"]["MASKWATCH_BROKER_URL"] == "redis://redis:6379/0"
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"])


def test_dockerfile_installs_the_service_extra_and_ffmpeg() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'pip install -e ".[service]"' in dockerfile
    assert "apt-get install" in dockerfile and "ffmpeg" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
