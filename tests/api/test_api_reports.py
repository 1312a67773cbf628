"""/v1/reports: the compliance time series per minute, hour or day, as JSON and as CSV."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from api.routes.reports import wants_csv
from storage.models import Job, JobStatus
from tests.api.api_support import Keys, bearer, frame, person

M, U, INC = "with_mask", "without_mask", "incorrect_mask"

CSV_HEADER = (
    b"bucket_start,faces,masked,unmasked,incorrect,compliance_ratio,"
    b"people,people_masked,people_unmasked,people_incorrect,people_compliance_ratio\r\n"
)


@pytest.fixture
def footage(make_job: Callable[..., Job]) -> None:
    """Frames captured at known instants (recorded_at + timestamp_s) at two sites."""
    make_job(
        site="north",
        camera="gate",
        status=JobStatus.SUCCEEDED,
        recorded_at=datetime(2024, 3, 1, 9, 0, tzinfo=UTC),
        frames=[frame(0, 0.0, 2, 1), frame(150, 30.0, 1, 0, 1), frame(350, 70.0, 0, 2)],
        # people count in the bucket they were first seen in: 09:00, 09:00 and 09:01
        people=[person(1, 0.0, M), person(2, 30.0, U), person(3, 70.0, INC)],
    )
    make_job(
        site="north",
        camera="dock",
        status=JobStatus.SUCCEEDED,
        recorded_at=datetime(2024, 3, 1, 10, 15, tzinfo=UTC),
        frames=[frame(0, 0.0, 4, 0), frame(25, 5.0, 0, 0), frame(18000, 3600.0, 0, 0)],
        people=[person(1, 0.0, M, seconds=3600.0)],  # stays on into the next hour
    )
    make_job(
        site="south",
        camera="gate",
        status=JobStatus.SUCCEEDED,
        recorded_at=datetime(2024, 3, 2, 9, 0, tzinfo=UTC),
        frames=[frame(0, 0.0, 0, 1)],
    )
    # Frames of jobs that did not succeed never count.
    make_job(
        site="north",
        camera="gate",
        status=JobStatus.FAILED,
        recorded_at=datetime(2024, 3, 1, 9, 0, tzinfo=UTC),
        frames=[frame(0, 0.0, 0, 9)],
        people=[person(1, 0.0, U)],
    )


def bucket(
    start: str,
    faces: int,
    masked: int,
    unmasked: int,
    incorrect: int,
    ratio: float | None,
    people: tuple[int, int, int, int, float | None] = (0, 0, 0, 0, None),
) -> dict[str, object]:
    return {
        "bucket_start": start,
        "faces": faces,
        "masked": masked,
        "unmasked": unmasked,
        "incorrect": incorrect,
        "compliance_ratio": ratio,
        "people": people[0],
        "people_masked": people[1],
        "people_unmasked": people[2],
        "people_incorrect": people[3],
        "people_compliance_ratio": people[4],
    }


@pytest.mark.usefixtures("footage")
def test_hourly_series_over_every_site(client: TestClient, keys: Keys) -> None:
    response = client.get("/v1/reports", params={"bucket": "hour"}, headers=bearer(keys.admin))
    assert response.status_code == 200
    assert response.json() == {
        "bucket": "hour",
        "items": [
            bucket("2024-03-01T09:00:00Z", 7, 3, 3, 1, 0.4286, (3, 1, 1, 1, 0.3333)),
            bucket("2024-03-01T10:00:00Z", 4, 4, 0, 0, 1.0, (1, 1, 0, 0, 1.0)),
            bucket("2024-03-01T11:00:00Z", 0, 0, 0, 0, None),
            bucket("2024-03-02T09:00:00Z", 1, 0, 1, 0, 0.0),
        ],
    }


@pytest.mark.usefixtures("footage")
def test_minute_and_day_buckets(client: TestClient, keys: Keys) -> None:
    auth = bearer(keys.admin)
    minutes = client.get(
        "/v1/reports", params={"bucket": "minute", "site": "north", "camera": "gate"}, headers=auth
    ).json()
    assert minutes["items"] == [
        bucket("2024-03-01T09:00:00Z", 5, 3, 1, 1, 0.6, (2, 1, 1, 0, 0.5)),
        bucket("2024-03-01T09:01:00Z", 2, 0, 2, 0, 0.0, (1, 0, 0, 1, 0.0)),
    ]
    days = client.get("/v1/reports", params={"bucket": "day"}, headers=auth).json()
    assert days["items"] == [
        bucket("2024-03-01T00:00:00Z", 11, 7, 3, 1, 0.6364, (4, 2, 1, 1, 0.5)),
        bucket("2024-03-02T00:00:00Z", 1, 0, 1, 0, 0.0),
    ]


@pytest.mark.usefixtures("footage")
def test_csv_is_byte_exact(client: TestClient, keys: Keys) -> None:
    response = client.get("/v1/reports", headers={**bearer(keys.admin), "Accept": "text/csv"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content == (
        CSV_HEADER
        + b"2024-03-01T09:00:00Z,7,3,3,1,0.4286,3,1,1,1,0.3333\r\n"
        + b"2024-03-01T10:00:00Z,4,4,0,0,1.0000,1,1,0,0,1.0000\r\n"
        + b"2024-03-01T11:00:00Z,0,0,0,0,,0,0,0,0,\r\n"
        + b"2024-03-02T09:00:00Z,1,0,1,0,0.0000,0,0,0,0,\r\n"
    )


def test_csv_of_an_empty_series_is_the_header_alone(client: TestClient, keys: Keys) -> None:
    response = client.get("/v1/reports", headers={**bearer(keys.admin), "Accept": "text/csv"})
    assert response.content == CSV_HEADER


@pytest.mark.usefixtures("footage")
def test_time_range_with_offsets(client: TestClient, keys: Keys) -> None:
    params = {"from": "2024-03-01T11:00:00+01:00", "to": "2024-03-02T00:00:00Z"}
    response = client.get("/v1/reports", params=params, headers=bearer(keys.admin))
    assert [b["bucket_start"] for b in response.json()["items"]] == [
        "2024-03-01T10:00:00Z",
        "2024-03-01T11:00:00Z",
    ]


@pytest.mark.usefixtures("footage")
def test_site_key_is_forced_to_its_site(client: TestClient, keys: Keys) -> None:
    own = client.get("/v1/reports", params={"bucket": "day"}, headers=bearer(keys.north)).json()
    assert own["items"] == [
        bucket("2024-03-01T00:00:00Z", 11, 7, 3, 1, 0.6364, (4, 2, 1, 1, 0.5))
    ]
    blank = client.get(
        "/v1/reports", params={"bucket": "day", "site": ""}, headers=bearer(keys.north)
    )
    assert blank.json() == own
    other = client.get("/v1/reports", params={"site": "south"}, headers=bearer(keys.north))
    assert other.json() == {"bucket": "hour", "items": []}
    csv = client.get(
        "/v1/reports",
        params={"site": "south"},
        headers={**bearer(keys.north), "Accept": "text/csv"},
    )
    assert csv.content == CSV_HEADER


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"from": "2024-03-01T09:00:00"}, "from needs a UTC offset, e.g. 2024-03-01T09:00:00Z"),
        ({"to": "noon"}, "to is not an ISO 8601 date and time: 'noon'"),
        (
            {"from": "0001-01-01T00:00:00+01:00"},
            "from is out of range: '0001-01-01T00:00:00+01:00'",
        ),
        (
            {"from": "2024-03-02T00:00:00Z", "to": "2024-03-01T00:00:00Z"},
            "'to' must be after 'from'",
        ),
    ],
)
def test_bad_time_range_is_422(
    client: TestClient, keys: Keys, params: dict[str, str], detail: str
) -> None:
    response = client.get("/v1/reports", params=params, headers=bearer(keys.admin))
    assert (response.status_code, response.json()) == (422, {"detail": detail})


def test_unknown_bucket_is_422(client: TestClient, keys: Keys) -> None:
    response = client.get("/v1/reports", params={"bucket": "week"}, headers=bearer(keys.admin))
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("accept", "csv"),
    [
        (None, False),
        ("text/csv", True),
        ("TEXT/CSV; charset=utf-8", True),
        ("application/json", False),
        ("*/*", False),
        ("text/csv;q=0.5, application/json", False),
        ("text/csv, application/json;q=0.9", True),
        ("text/csv;q=0", False),
        ("text/csv, */*", False),  # a tie goes to JSON
        ("text/html, text/csv;q=0.8", True),
    ],
)
def test_accept_negotiation(accept: str | None, csv: bool) -> None:
    assert wants_csv(accept) is csv
