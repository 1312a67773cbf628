"""The dashboard's pages in-process on SQLite and PostgreSQL: sign-in cookie, scoping,
escaping and headers (the browser test, tests/ui/, drives the same pages in chromium)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from storage.models import Job, JobStatus
from storage.repositories import api_keys as key_repo
from tests.api.api_support import Keys, bearer, frame, person

M, U, INC = "with_mask", "without_mask", "incorrect_mask"


def sign_in(client: TestClient, key: str) -> None:
    response = client.post("/ui/login", data={"key": key}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ui/sites"


def test_sign_in_sets_a_strict_http_only_cookie_and_pages_need_it(
    client: TestClient, keys: Keys
) -> None:
    assert client.get("/ui/sites", follow_redirects=False).headers["location"] == "/ui/login"
    refused = client.post("/ui/login", data={"key": keys.revoked})
    assert refused.status_code == 401 and "invalid or revoked API key" in refused.text
    response = client.post("/ui/login", data={"key": keys.north}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    page = client.get("/ui/sites")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert keys.north not in page.text


def test_a_revoked_key_is_signed_out_at_its_next_page(
    client: TestClient, session: Session
) -> None:
    api_key, plaintext = key_repo.create_api_key(session, "temp", site="north")
    session.commit()
    sign_in(client, plaintext)
    assert client.get("/ui/jobs").status_code == 200
    key_repo.revoke_api_key(session, api_key)
    session.commit()
    response = client.get("/ui/jobs", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/ui/login")


def test_pages_show_the_keys_site_only_and_escape_names(
    client: TestClient, keys: Keys, make_job: Callable[..., Job]
) -> None:
    mine = make_job(camera="<img src=x onerror=alert(1)>", status=JobStatus.SUCCEEDED,
                    frames=[frame(0, 0.0, 1, 1), frame(1, 70.0, 2, 0)])
    theirs = make_job(site="south", camera="dock", status=JobStatus.SUCCEEDED,
                      frames=[frame(0, 0.0, 0, 2)])
    sign_in(client, keys.north)
    sites = client.get("/ui/sites").text
    assert "<img src=x onerror=alert(1)>" not in sites
    assert "&lt;img src=x onerror=alert(1)&gt;" in sites
    assert "dock" not in sites and "75.0 %" in sites  # 3 masked of 4 faces

    camera = client.get(
        "/ui/camera",
        params={"site": "north", "camera": "<img src=x onerror=alert(1)>", "bucket": "minute"},
    )
    assert camera.status_code == 200
    assert camera.text.count('<tr class="') == 2  # two minutes of footage
    assert "<img src=x" not in camera.text  # names escaped, in the chart's JSON too
    assert client.get("/ui/camera", params={"site": "south", "camera": "dock"}).status_code == 404
    assert client.get(f"/ui/jobs/{mine.id}").status_code == 200
    assert client.get(f"/ui/jobs/{theirs.id}").status_code == 404
    listed = client.get("/ui/jobs.json").json()["items"]
    assert [j["id"] for j in listed] == [mine.id]
    assert listed[0]["compliance"] == "75.0 %"


def test_pages_show_people_beside_face_frames_with_the_apis_numbers(
    client: TestClient, keys: Keys, make_job: Callable[..., Job]
) -> None:
    job = make_job(
        status=JobStatus.SUCCEEDED,
        recorded_at=datetime(2024, 3, 1, 9, 0, tzinfo=UTC),
        frames=[frame(0, 0.0, 2, 1), frame(150, 30.0, 1, 0, 1), frame(350, 70.0, 0, 2)],
        # first seen at 09:00, 09:00 and 09:01
        people=[person(1, 0.0, M), person(2, 30.0, U, seconds=4.0), person(3, 70.0, INC)],
    )
    sign_in(client, keys.north)
    api_job = client.get(f"/v1/jobs/{job.id}", headers=bearer(keys.north)).json()
    assert api_job["summary"]["people"]["total"] == 3

    (row,) = [r for r in rows_of(client.get("/ui/sites").text, "cameras")
              if r.attrs.get("data-camera") == "gate"]
    assert float(row.attrs["data-people-ratio"]) == pytest.approx(
        api_job["summary"]["people"]["compliance_ratio"], abs=1e-4
    )
    assert row.cells[-2:] == ["3", "33.3 %"]  # 1 of 3 people masked

    report = client.get(
        "/v1/reports", params={"site": "north", "camera": "gate", "bucket": "minute"},
        headers=bearer(keys.north),
    ).json()["items"]
    page = client.get("/ui/camera", params={"site": "north", "camera": "gate", "bucket": "minute"})
    rows = rows_of(page.text, "buckets")
    assert [(int(r.attrs["data-people"]), r.attrs["data-people-ratio"]) for r in rows] == [
        (b["people"], str(b["people_compliance_ratio"])) for b in report
    ] == [(2, "0.5"), (1, "0.0")]
    assert [r.cells[-3:] for r in rows] == [["2", "1", "50.0 %"], ["1", "0", "0.0 %"]]
    chart = json.loads(re.findall(r'<script type="application/json" id="chart-data">(.*?)</script>',
                                  page.text, re.S)[0])
    assert chart["people"] == [2, 1] and chart["people_compliance_percent"] == [50.0, 0.0]

    [listed] = client.get("/ui/jobs.json").json()["items"]
    assert (listed["people"], listed["people_compliance"]) == (3, "33.3 %")
    assert rows_of(client.get("/ui/jobs").text, "jobs")[0].cells[-4:] == [
        str(api_job["summary"]["faces"]), "42.9 %", "3", "33.3 %"  # 3 of 7 faces, 1 of 3 people
    ]

    tracks = client.get(f"/v1/jobs/{job.id}/tracks", headers=bearer(keys.north)).json()["items"]
    job_page = client.get(f"/ui/jobs/{job.id}").text
    who = api_job["summary"]["people"]
    assert rows_of(job_page, "people")[0].cells == [
        str(who[name]) for name in ("total", "masked", "unmasked", "incorrect", "ever_unmasked")
    ] + ["33.3 %", "25.0 %"]  # 1 of 3 people masked; 2 of 8 person-seconds
    assert (who["compliance_ratio"], who["seconds_compliance_ratio"]) == (0.3333, 0.25)
    shown_tracks = rows_of(job_page, "tracks")
    assert [(r.attrs["data-track"], r.attrs["data-label"]) for r in shown_tracks] == [
        (str(t["track_id"]), t["label"]) for t in tracks
    ] == [("1", M), ("2", U), ("3", INC)]
    assert shown_tracks[1].cells == [
        "2", "30.0 s (2024-03-01T09:00:30Z)", "33.8 s (2024-03-01T09:00:33.800000Z)", "4.0 s", U,
    ]


class Row:
    """A table body row as a user reads it: its data- attributes and its cells' text."""

    def __init__(self, attrs: dict[str, str]) -> None:
        self.attrs = attrs
        self.cells: list[str] = []


def rows_of(page: str, table_id: str) -> list[Row]:
    """The body rows of the page's table with this id."""

    class Rows(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.inside = self.in_body = False
            self.cell: list[str] | None = None
            self.rows: list[Row] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "table":
                self.inside = dict(attrs).get("id") == table_id
            elif self.inside and tag == "tbody":
                self.in_body = True
            elif self.in_body and tag == "tr":
                self.rows.append(Row({k: v or "" for k, v in attrs}))
            elif self.in_body and tag == "td":
                self.cell = []

        def handle_endtag(self, tag: str) -> None:
            if tag == "td" and self.cell is not None:
                self.rows[-1].cells.append(" ".join("".join(self.cell).split()))
                self.cell = None
            elif tag == "table":
                self.inside = self.in_body = False

        def handle_data(self, data: str) -> None:
            if self.cell is not None:
                self.cell.append(data)

    parser = Rows()
    parser.feed(page)
    return parser.rows
