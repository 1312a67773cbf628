"""maskwatch.client and the CLI built on it (`jobs`, `reports`, `alerts`), against the API
served in-process on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from maskwatch.cli import app as cli
from maskwatch.client import ApiError, MaskWatchClient, default_api_url
from maskwatch.settings import Settings
from storage.models import Job, JobStatus
from tests.api.api_support import Keys, frame

API = "http://api.test"


@pytest.fixture
def served(
    app_factory: Callable[..., Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx.Client talks to the app in-process (webhooks to loopback allowed)."""
    app = app_factory(settings=settings.model_copy(update={"alert_private_targets": True}))

    def in_process(base_url: str, headers: dict[str, str], timeout: Any) -> TestClient:
        return TestClient(app, base_url=base_url, headers=headers)

    monkeypatch.setattr(httpx, "Client", in_process)


Run = Callable[..., Result]


@pytest.fixture
def run(served: None) -> Run:
    """``run(key, *args)``: the maskwatch CLI with ``args``, as ``key``, against the served API."""
    runner = CliRunner()

    def invoke(key: str, *args: str) -> Result:
        return runner.invoke(cli, [*args, "--api", API, "--key", key])

    return invoke


@pytest.fixture
def jobs(make_job: Callable[..., Job]) -> dict[str, Job]:
    """North: a succeeded job (2 frames: 3 of 4 masked, then 1 of 2) and a queued one."""
    return {
        "done": make_job(status=JobStatus.SUCCEEDED,
                         frames=[frame(0, 0.0, 3, 1), frame(1, 90.0, 1, 1)]),
        "queued": make_job(camera="dock"),
        "south": make_job(site="south", status=JobStatus.FAILED, error="clip.mp4: unreadable"),
    }


@pytest.mark.parametrize(
    ("overrides", "url"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"api_host": "0.0.0.0", "api_port": 9001}, "http://127.0.0.1:9001"),
        ({"api_host": "10.0.0.5", "api_port": 8080}, "http://10.0.0.5:8080"),
        ({"api_url": "https://mw.example.com/", "api_port": 9001}, "https://mw.example.com"),
    ],
)
def test_the_client_finds_the_api_where_serve_listens_unless_told(
    overrides: dict[str, Any], url: str
) -> None:
    assert default_api_url(Settings(**overrides)) == url


def test_jobs_list_shows_the_keys_site_only_as_a_table_or_json(
    run: Run, keys: Keys, jobs: dict[str, Job]
) -> None:
    table = run(keys.north, "jobs", "list")
    assert table.exit_code == 0, table.output
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["id", "status", "site", "camera", "input", "created", "frames",
                              "faces", "compliance"]
    assert [row.split()[:4] for row in rows] == [
        [jobs["queued"].id, "queued", "north", "dock"],
        [jobs["done"].id, "succeeded", "north", "gate"],
    ]
    assert rows[1].split()[-3:] == ["6", "66.7", "%"]  # 4 masked of 6 faces

    listed = run(keys.admin, "jobs", "list", "--status", "failed", "--json")
    assert listed.exit_code == 0, listed.output
    [failed] = json.loads(listed.stdout)
    assert (failed["id"], failed["error"]) == (jobs["south"].id, "clip.mp4: unreadable")
    assert json.loads(run(keys.admin, "jobs", "list", "--limit", "1", "--json").stdout)[
        0]["id"] == jobs["south"].id


def test_jobs_show_and_cancel_and_their_errors(
    run: Run, keys: Keys, jobs: dict[str, Job]
) -> None:
    shown = run(keys.north, "jobs", "show", jobs["done"].id)
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["summary"]["faces"] == 6

    cancelled = run(keys.north, "jobs", "cancel", jobs["queued"].id)
    assert cancelled.exit_code == 0, cancelled.output
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    again = run(keys.north, "jobs", "cancel", jobs["queued"].id)
    assert again.exit_code == 1
    assert again.stderr == "error: 409 Conflict: job already cancelled\n"
    other_site = run(keys.north, "jobs", "cancel", jobs["south"].id)
    assert other_site.stderr == "error: 404 Not Found: job not found\n"


def test_jobs_delete_deletes_the_job(
    run: Run, keys: Keys, jobs: dict[str, Job]
) -> None:
    result = run(keys.north, "jobs", "delete", jobs["queued"].id)
    assert (result.exit_code, result.stdout) == (0, ""), result.output
    assert result.stderr == f"deleted job {jobs['queued'].id}\n"
    after = run(keys.north, "jobs", "show", jobs["queued"].id)
    assert after.stderr == "error: 404 Not Found: job not found\n"


def test_reports_as_table_json_and_csv_carry_the_apis_numbers(
    run: Run, keys: Keys, jobs: dict[str, Job]
) -> None:
    args = ("reports", "--bucket", "minute", "--camera", "gate")
    as_json = run(keys.north, *args, "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert [(b["bucket_start"], b["faces"], b["masked"]) for b in report["items"]] == [
        ("2024-03-01T09:00:00Z", 4, 3),
        ("2024-03-01T09:01:00Z", 2, 1),
    ]
    table = run(keys.north, *args).stdout.splitlines()
    assert table[0].split() == ["bucket_start", "faces", "masked", "unmasked", "incorrect",
                                "compliance"]
    assert table[1].split() == ["2024-03-01T09:00:00Z", "4", "3", "1", "0", "75.0", "%"]
    assert table[2].split() == ["2024-03-01T09:01:00Z", "2", "1", "1", "0", "50.0", "%"]
    rows = list(csv.DictReader(io.StringIO(run(keys.north, *args, "--format", "csv")
                                           .stdout)))
    assert [(r["faces"], r["compliance_ratio"]) for r in rows] == [("4", "0.7500"), ("2", "0.5000")]
    # A site key asking for another site gets nothing, as from the API.
    assert run(keys.north, *args, "--site", "south", "--format", "json").stdout.count(
        "bucket_start") == 0
    bad = run(keys.north, "reports", "--from", "yesterday")
    assert bad.exit_code == 1
    assert "from is not an ISO 8601 date and time" in bad.stderr


def test_alerts_add_list_show_deliveries_remove(run: Run, keys: Keys) -> None:
    added = run(keys.north, "alerts", "add", "compliance-below", "--url",
                "http://127.0.0.1:9/hook", "--below", "80", "--window", "15", "--camera", "gate",
                "--measure", "people")
    assert added.exit_code == 0, added.output
    rule = json.loads(added.stdout)
    assert rule["secret"].startswith("whsec_") and "shown only once" in added.stderr
    assert (rule["kind"], rule["site"], rule["threshold_percent"], rule["window_s"]) == (
        "compliance_below", "north", 80, 900
    )
    assert rule["measure"] == "people"
    listed = run(keys.north, "alerts", "list").stdout.splitlines()
    assert listed[1].split()[:9] == [str(rule["id"]), "compliance_below", "north", "gate", "<",
                                     "80", "%", "of", "people"]
    assert rule["secret"] not in "\n".join(listed)
    assert run(keys.south, "alerts", "list").stdout.splitlines()[1:] == []
    shown = json.loads(run(keys.north, "alerts", "show", str(rule["id"])).stdout)
    assert shown["url"] == "http://127.0.0.1:9/hook" and "secret" not in shown

    missing = run(keys.north, "alerts", "add", "compliance-below", "--url",
                  "http://127.0.0.1:9/hook", "--below", "80")
    assert missing.exit_code == 1
    assert "compliance_below needs threshold_percent and window_minutes" in missing.stderr
    not_compliance = run(keys.north, "alerts", "add", "job-failed", "--url",
                         "http://127.0.0.1:9/hook", "--measure", "people")
    assert not_compliance.exit_code == 1 and "job_failed takes no measure" in not_compliance.stderr

    assert run(keys.north, "alerts", "deliveries").stdout.splitlines()[1:] == []
    assert run(keys.south, "alerts", "remove", str(rule["id"])).exit_code == 1
    removed = run(keys.north, "alerts", "remove", str(rule["id"]))
    assert removed.exit_code == 0 and removed.stderr == f"removed rule {rule['id']}\n"
    assert json.loads(run(keys.north, "alerts", "list", "--json").stdout) == []


@pytest.mark.usefixtures("served")
def test_the_client_raises_the_servers_reason(keys: Keys, jobs: dict[str, Job]) -> None:
    with MaskWatchClient(API, keys.north) as api:
        assert [job["id"] for job in api.iter_jobs(camera="gate")] == [jobs["done"].id]
        assert api.wait(jobs["done"].id, poll_s=0)["status"] == "succeeded"
        with pytest.raises(TimeoutError, match="still queued"):
            api.wait(jobs["queued"].id, poll_s=0, timeout_s=0)
        with pytest.raises(ApiError) as raised:
            api.job("f" * 32)
    assert (raised.value.status_code, raised.value.detail) == (404, "job not found")
    with MaskWatchClient(API, "mw_wrong") as api, pytest.raises(ApiError, match="401"):
        api.jobs()
