"""The dashboard's pages in-process on SQLite and PostgreSQL: sign-in cookie, scoping,
escaping and headers (the browser test, tests/ui/, drives the same pages in chromium)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from storage.models import Job, JobStatus
from storage.repositories import api_keys as key_repo
from tests.api.api_support import Keys, frame


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
