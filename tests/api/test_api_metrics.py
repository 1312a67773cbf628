"""GET /metrics: the API's request counters, by route template and status, without a key."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.api.api_support import Keys, bearer


def requests_total(client: TestClient) -> dict[tuple[str, str, str], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name == "maskwatch_http_requests_total"
    }


def test_requests_are_counted_by_route_template_and_status(client: TestClient, keys: Keys) -> None:
    before = requests_total(client)
    assert client.get("/v1/jobs/" + "a" * 32, headers=bearer(keys.north)).status_code == 404
    assert client.get("/v1/jobs/" + "b" * 32, headers=bearer(keys.north)).status_code == 404
    assert client.get("/v1/jobs").status_code == 401
    assert client.get("/no/such/page/secret-token").status_code == 404
    after = requests_total(client)

    def moved(key: tuple[str, str, str]) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert moved(("GET", "/v1/jobs/{job_id}", "404")) == 2
    assert moved(("GET", "/v1/jobs", "401")) == 1
    # A path that matched no route is one label value, whatever was asked for.
    assert moved(("GET", "<unmatched>", "404")) == 1
    assert "secret-token" not in client.get("/metrics").text


def test_latencies_are_recorded_per_route(client: TestClient) -> None:
    client.get("/healthz")
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    counts = {
        s.labels["route"]: s.value
        for s in families["maskwatch_http_request_duration_seconds"].samples
        if s.name.endswith("_count")
    }
    assert counts["/healthz"] >= 1
