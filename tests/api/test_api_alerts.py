"""Alert rules through /v1/alerts, their evaluation when a job ends, and signed webhook
deliveries to a real HTTP receiver on 127.0.0.1 (answering 2xx, 5xx, 4xx, or down)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from maskwatch.settings import Settings
from storage.models import DeliveryStatus, Job, JobStatus
from tests.api.api_support import Keys, bearer, frame, person
from tests.api.webhook_receiver import receiving
from worker import alerts

RETRY_BASE_S = 5.0


@pytest.fixture
def open_client(app_factory: Callable[..., Any], settings: Settings) -> Iterator[TestClient]:
    """The API with webhooks to loopback allowed (the receivers here listen on 127.0.0.1)."""
    allowed = settings.model_copy(update={"alert_private_targets": True})
    with TestClient(app_factory(settings=allowed), raise_server_exceptions=False) as client:
        yield client


def add_rule(client: TestClient, key: str, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/alerts/rules", json=body, headers=bearer(key))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def deliver(session: Session, delivery_id: int, **overrides: Any) -> alerts.Attempted | None:
    options: dict[str, Any] = {
        "max_attempts": 3,
        "retry_base_s": RETRY_BASE_S,
        "timeout_s": 5.0,
        "allow_private": True,
    } | overrides
    attempted = alerts.deliver(session, delivery_id, **options)
    session.commit()
    return attempted


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------- the API


def test_a_site_key_manages_the_rules_of_its_own_site_only(
    open_client: TestClient, keys: Keys
) -> None:
    rule = add_rule(open_client, keys.north, kind="job_failed", url="https://example.com/hook")
    assert (rule["site"], rule["camera"], rule["kind"]) == ("north", None, "job_failed")
    assert rule["secret"].startswith("whsec_")

    refused = open_client.post(
        "/v1/alerts/rules",
        json={"kind": "job_failed", "url": "https://example.com/h", "site": "south"},
        headers=bearer(keys.north),
    )
    assert refused.status_code == 403
    assert refused.json()["detail"] == "this key may only manage site 'north'"
    no_site = open_client.post(
        "/v1/alerts/rules",
        json={"kind": "job_failed", "url": "https://example.com/h"},
        headers=bearer(keys.all_sites),
    )
    assert no_site.status_code == 422
    add_rule(open_client, keys.all_sites, kind="job_finished", url="https://example.com/s",
             site="south", camera="dock")

    north = open_client.get("/v1/alerts/rules", headers=bearer(keys.north)).json()["items"]
    assert [r["id"] for r in north] == [rule["id"]]
    assert "secret" not in north[0]
    everything = open_client.get("/v1/alerts/rules", headers=bearer(keys.admin)).json()["items"]
    assert {r["site"] for r in everything} == {"north", "south"}
    path = f"/v1/alerts/rules/{rule['id']}"
    assert open_client.get(path, headers=bearer(keys.south)).status_code == 404
    assert open_client.delete(path, headers=bearer(keys.south)).status_code == 404
    assert open_client.delete(path, headers=bearer(keys.north)).status_code == 204
    assert open_client.get(path, headers=bearer(keys.north)).status_code == 404
    assert open_client.get("/v1/alerts/rules").status_code == 401


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"kind": "compliance_below", "threshold_percent": 80}, "needs threshold_percent and"),
        ({"kind": "job_failed", "window_minutes": 5}, "takes no threshold_percent"),
        ({"kind": "compliance_below", "threshold_percent": 120, "window_minutes": 5}, "100"),
        ({"kind": "job_failed", "url": "ftp://example.com/x"}, "URL scheme"),
        ({"kind": "job_failed", "url": "https://me:pw@example.com/x"}, "user name or password"),
        ({"kind": "job_failed", "measure": "people"}, "job_failed takes no measure"),
        ({"kind": "compliance_below", "threshold_percent": 80, "window_minutes": 5,
          "measure": "heads"}, "measure must be one of: face_frames, people"),
        ({"kind": "job_failed", "url": "http://127.0.0.1:9/x"}, "an internal address"),
        ({"kind": "job_failed", "url": "http://169.254.169.254/latest"}, "an internal address"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(
    client: TestClient, keys: Keys, body: dict[str, Any], complaint: str
) -> None:
    body = {"url": "https://example.com/hook"} | body
    response = client.post("/v1/alerts/rules", json=body, headers=bearer(keys.north))
    assert response.status_code == 422
    assert complaint in str(response.json()["detail"])


# --------------------------------------------------------------------- evaluation, delivery


@pytest.fixture
def half_masked_job(make_job: Callable[..., Job]) -> Job:
    """A succeeded job at north/gate: 4 frames, each with one masked and one unmasked face."""
    return make_job(
        status=JobStatus.SUCCEEDED, frames=[frame(i, i * 0.5, 1, 1) for i in range(4)]
    )


def test_an_ended_job_sets_off_the_rules_that_hold_once_each(
    open_client: TestClient, keys: Keys, session: Session, half_masked_job: Job,
    make_job: Callable[..., Job],
) -> None:
    url = "http://127.0.0.1:9/unused"
    below_80 = add_rule(open_client, keys.north, kind="compliance_below", url=url,
                        threshold_percent=80, window_minutes=10, camera="gate")
    below_40 = add_rule(open_client, keys.north, kind="compliance_below", url=url,
                        threshold_percent=40, window_minutes=10)
    too_few = add_rule(open_client, keys.north, kind="compliance_below", url=url,
                       threshold_percent=80, window_minutes=10, min_faces=100)
    finished = add_rule(open_client, keys.north, kind="job_finished", url=url)
    failed = add_rule(open_client, keys.north, kind="job_failed", url=url)
    other_camera = add_rule(open_client, keys.north, kind="job_finished", url=url, camera="dock")
    south = add_rule(open_client, keys.south, kind="job_finished", url=url)

    pending = alerts.evaluate_job(session, half_masked_job.id)
    session.commit()
    assert alerts.evaluate_job(session, half_masked_job.id) == pending  # nothing twice
    session.commit()
    deliveries = open_client.get("/v1/alerts/deliveries", headers=bearer(keys.north)).json()
    fired = {d["rule_id"]: d for d in deliveries["items"]}
    assert set(fired) == {below_80["id"], finished["id"]}
    silent = {below_40["id"], too_few["id"], failed["id"], other_camera["id"], south["id"]}
    assert not silent & set(fired)
    assert all(d["status"] == "pending" and d["attempts"] == 0 for d in fired.values())

    broken = make_job(status=JobStatus.FAILED, error="corridor.mp4: no frame could be decoded")
    alerts.evaluate_job(session, broken.id)
    session.commit()
    items = open_client.get("/v1/alerts/deliveries", headers=bearer(keys.north)).json()["items"]
    assert [(d["rule_id"], d["job_id"]) for d in items if d["event"] == "job_failed"] == [
        (failed["id"], broken.id)
    ]
    assert open_client.get("/v1/alerts/deliveries", headers=bearer(keys.south)).json() == {
        "items": []
    }


def test_a_delivery_is_signed_retried_after_a_5xx_and_logged(
    open_client: TestClient, keys: Keys, session: Session, half_masked_job: Job
) -> None:
    with receiving(answers=[503, 200]) as receiver:
        rule = add_rule(open_client, keys.north, kind="compliance_below", url=receiver.url,
                        threshold_percent=80, window_minutes=10)
        [delivery_id] = alerts.evaluate_job(session, half_masked_job.id)
        session.commit()

        first = deliver(session, delivery_id)
        assert first is not None
        assert (first.status, first.status_code, first.retry_in_s) == (
            DeliveryStatus.PENDING, 503, RETRY_BASE_S
        )
        second = deliver(session, delivery_id)
        assert second is not None and second.status is DeliveryStatus.DELIVERED
        assert deliver(session, delivery_id) is None  # delivered: a duplicate message is a no-op

    assert len(receiver.received) == 2
    message = receiver.received[-1]
    assert message.path == "/hooks/maskwatch"
    assert message.signed_by(rule["secret"])
    assert not message.signed_by("whsec_someone-else")
    assert message.headers["x-maskwatch-event"] == "compliance_below"
    assert message.headers["x-maskwatch-delivery"] == str(delivery_id)
    body = message.json()
    assert body["event"] == "compliance_below"
    assert body["rule"]["threshold_percent"] == 80
    assert body["job"]["id"] == half_masked_job.id
    assert (body["job"]["faces"], body["job"]["masked"]) == (8, 4)
    assert body["window"]["faces"] == 8 and body["window"]["compliance_ratio"] == 0.5
    assert body["window"]["measure"] == "face_frames"
    assert body["window"]["end"] == "2024-03-01T09:00:01.500000Z"

    [logged] = open_client.get("/v1/alerts/deliveries", headers=bearer(keys.north)).json()["items"]
    assert (logged["status"], logged["attempts"], logged["last_status_code"]) == (
        "delivered", 2, 200
    )
    assert [a["status_code"] for a in logged["log"]] == [503, 200]
    assert logged["log"][0]["error"].startswith("HTTP 503")


def test_a_receiver_that_is_down_at_first_gets_the_message_on_a_later_try(
    open_client: TestClient, keys: Keys, session: Session, half_masked_job: Job
) -> None:
    port = closed_port()
    rule = add_rule(open_client, keys.north, kind="job_finished",
                    url=f"http://127.0.0.1:{port}/hooks/maskwatch")
    [delivery_id] = alerts.evaluate_job(session, half_masked_job.id)
    session.commit()

    down = deliver(session, delivery_id)
    assert down is not None
    assert (down.status, down.status_code) == (DeliveryStatus.PENDING, None)
    assert down.error is not None and "ConnectError" in down.error
    assert down.retry_in_s == RETRY_BASE_S
    with receiving(port=port) as receiver:
        up = deliver(session, delivery_id)
    assert up is not None and up.status is DeliveryStatus.DELIVERED
    [message] = receiver.received
    assert message.signed_by(rule["secret"]) and message.json()["event"] == "job_finished"
    [logged] = open_client.get("/v1/alerts/deliveries", headers=bearer(keys.north)).json()["items"]
    assert [a["status_code"] for a in logged["log"]] == [None, 200]


def test_retries_stop_after_the_last_attempt_and_a_4xx_is_not_retried(
    open_client: TestClient, keys: Keys, session: Session, half_masked_job: Job
) -> None:
    port = closed_port()
    add_rule(open_client, keys.north, kind="job_finished", url=f"http://127.0.0.1:{port}/x")
    with receiving(answers=[410]) as receiver:
        add_rule(open_client, keys.north, kind="compliance_below", url=receiver.url,
                 threshold_percent=90, window_minutes=1)
        down_id, gone_id = alerts.evaluate_job(session, half_masked_job.id)
        session.commit()
        waits = []
        for _ in range(3):
            attempted = deliver(session, down_id)
            assert attempted is not None
            waits.append(attempted.retry_in_s)
        assert attempted.status is DeliveryStatus.FAILED
        assert waits == [RETRY_BASE_S, RETRY_BASE_S * 2, None]
        assert deliver(session, down_id) is None

        gone = deliver(session, gone_id)
        assert gone is not None
        assert (gone.status, gone.status_code, gone.retry_in_s) == (
            DeliveryStatus.FAILED, 410, None
        )
    failed = open_client.get(
        "/v1/alerts/deliveries", params={"status": "failed"}, headers=bearer(keys.north)
    ).json()["items"]
    assert {d["id"]: d["attempts"] for d in failed} == {down_id: 3, gone_id: 1}


def test_a_rule_to_an_internal_address_is_refused_again_when_delivering(
    open_client: TestClient, keys: Keys, session: Session, half_masked_job: Job
) -> None:
    """Allowed when the rule was made; the workers' setting says no: failed, not retried."""
    with receiving() as receiver:
        add_rule(open_client, keys.north, kind="job_finished", url=receiver.url)
        [delivery_id] = alerts.evaluate_job(session, half_masked_job.id)
        session.commit()
        attempted = deliver(session, delivery_id, allow_private=False)
    assert attempted is not None and attempted.status is DeliveryStatus.FAILED
    assert attempted.error is not None and "internal address" in attempted.error
    assert receiver.received == []


def test_a_people_rule_counts_people_where_a_face_frames_rule_counts_faces(
    open_client: TestClient, keys: Keys, session: Session, make_job: Callable[..., Job]
) -> None:
    """Three of four face-frames masked (75 %), but one of three people (33 %): the long
    masked stay fills the frames, the two unmasked passers-by are most of the people."""
    job = make_job(
        status=JobStatus.SUCCEEDED,
        frames=[frame(i, i * 0.5, 3, 1) for i in range(4)],
        people=[person(1, 0.0, "with_mask"), person(2, 0.5, "without_mask", seconds=0.4),
                person(3, 1.0, "without_mask", seconds=0.4)],
    )
    with receiving() as receiver:
        people_50 = add_rule(open_client, keys.north, kind="compliance_below", url=receiver.url,
                             threshold_percent=50, window_minutes=10, measure="people")
        silent = [
            add_rule(open_client, keys.north, kind="compliance_below", url=receiver.url,
                     threshold_percent=70, window_minutes=10),  # 75 % of face-frames
            add_rule(open_client, keys.north, kind="compliance_below", url=receiver.url,
                     threshold_percent=30, window_minutes=10, measure="people"),  # 33 %
            add_rule(open_client, keys.north, kind="compliance_below", url=receiver.url,
                     threshold_percent=50, window_minutes=10, measure="people",
                     min_faces=4),  # only 3 people
        ]
        assert people_50["measure"] == "people"
        [delivery_id] = alerts.evaluate_job(session, job.id)
        session.commit()
        attempted = deliver(session, delivery_id)
        assert attempted is not None and attempted.status is DeliveryStatus.DELIVERED

    [message] = receiver.received
    assert message.signed_by(people_50["secret"])
    body = message.json()
    assert body["rule"]["id"] == people_50["id"] and body["rule"]["measure"] == "people"
    assert body["window"]["measure"] == "people"
    assert (body["window"]["people"], body["window"]["masked"]) == (3, 1)
    assert body["window"]["compliance_ratio"] == pytest.approx(1 / 3)
    assert "faces" not in body["window"]
    assert (body["job"]["faces"], body["job"]["masked"]) == (16, 12)
    assert body["job"]["people"]["total"] == 3
    assert body["job"]["people"]["compliance_ratio"] == 0.3333
    logged = open_client.get("/v1/alerts/deliveries", headers=bearer(keys.north)).json()["items"]
    assert [d["rule_id"] for d in logged] == [people_50["id"]]
    assert not {r["id"] for r in silent} & {d["rule_id"] for d in logged}
