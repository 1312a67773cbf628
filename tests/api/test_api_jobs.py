"""/v1/jobs: submitting footage, reading, listing, cancelling jobs and paging their frames."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from maskwatch.settings import Settings
from storage.models import InputKind, Job, JobStatus
from tests.api.api_support import (
    Keys,
    Queue,
    bearer,
    count_jobs,
    files_under,
    frame,
    job_rows,
    multipart_body,
    person,
)

UPLOAD_NAME = re.compile(r"[0-9a-f]{32}\.(mp4|png|bin)")
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def submit(
    client: TestClient,
    key: str,
    content: bytes,
    name: str = "entrance.mp4",
    **form: str,
) -> Any:
    return client.post(
        "/v1/jobs",
        headers=bearer(key),
        data=form or {"camera": "gate", "site": "north"},
        files={"file": (name, content, "application/octet-stream")},
    )


def stored_job(session: Session, job_id: str) -> Job:
    session.expire_all()
    job = session.get(Job, job_id)
    assert job is not None
    return job


def test_submit_stores_the_upload_and_enqueues_after_commit(
    client: TestClient,
    keys: Keys,
    session: Session,
    queue: Queue,
    upload_dir: Path,
    video_bytes: bytes,
) -> None:
    response = submit(
        client,
        keys.admin,
        video_bytes,
        camera="gate",
        site="north",
        recorded_at="2024-03-01T10:00:00+01:00",
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/jobs/{body['id']}"
    assert body["status"] == "queued"
    assert (body["site"], body["camera"], body["input_name"]) == ("north", "gate", "entrance.mp4")
    assert body["input_kind"] == "video"
    assert body["recorded_at"] == "2024-03-01T09:00:00Z"
    assert ISO_UTC.fullmatch(body["created_at"])
    assert body["started_at"] is None and body["finished_at"] is None
    assert body["progress"] == {"frames_done": 0, "frames_total": None}
    assert body["error"] is None and body["summary"] is None

    assert queue.enqueued == [body["id"]]
    assert queue.status_at_enqueue == [JobStatus.QUEUED]  # committed before it was enqueued
    [stored] = files_under(upload_dir)
    assert UPLOAD_NAME.fullmatch(stored.name) and stored.suffix == ".mp4"
    assert stored.read_bytes() == video_bytes
    job = stored_job(session, body["id"])
    assert Path(job.input_path) == stored.resolve()
    assert job.input_kind is InputKind.VIDEO
    assert job.settings["sample_fps"] == 5.0


@pytest.mark.parametrize(
    ("choice", "weights"),
    [(None, "mtcnn_finetuned.pt+mtcnn_union.pt"), ("accurate", "mtcnn_finetuned.pt+mtcnn_union.pt"),
     ("fast", "mtcnn_finetuned.pt")],
)
def test_a_job_may_ask_for_the_fast_detector(
    client: TestClient, keys: Keys, session: Session, video_bytes: bytes,
    choice: str | None, weights: str,
) -> None:
    form = {"camera": "gate", "site": "north"} | ({"detector": choice} if choice else {})
    response = submit(client, keys.admin, video_bytes, **form)
    assert response.status_code == 201, response.text
    assert response.json()["detector_weights"] == weights
    assert stored_job(session, response.json()["id"]).settings["detector_weights"] == weights
    assert response.json()["mirror_faces"] is True  # the shipped default


def test_a_job_takes_the_servers_mirror_setting(
    app_factory: Callable[..., Any], settings: Settings, keys: Keys, session: Session,
    video_bytes: bytes,
) -> None:
    plain = settings.model_copy(update={"mirror_faces": False})
    with TestClient(app_factory(settings=plain), raise_server_exceptions=False) as client:
        response = submit(client, keys.admin, video_bytes, camera="gate", site="north")
        assert response.status_code == 201, response.text
        assert response.json()["mirror_faces"] is False
        assert stored_job(session, response.json()["id"]).settings["mirror_faces"] is False
        listed = client.get("/v1/jobs", headers=bearer(keys.admin))
        assert [job["mirror_faces"] for job in listed.json()["items"]] == [False]


def test_site_key_may_omit_the_site(client: TestClient, keys: Keys, video_bytes: bytes) -> None:
    response = submit(client, keys.north, video_bytes, camera="gate")
    assert response.status_code == 201
    assert response.json()["site"] == "north"


def test_image_upload_becomes_an_image_job(
    client: TestClient, keys: Keys, image_bytes: bytes, upload_dir: Path
) -> None:
    response = submit(client, keys.north, image_bytes, name="still.PNG", camera="gate")
    assert response.status_code == 201
    assert response.json()["input_kind"] == "image"
    assert [p.suffix for p in files_under(upload_dir)] == [".png"]


@pytest.mark.parametrize(
    ("client_name", "shown"),
    [
        ("../../etc/passwd.mp4", "passwd.mp4"),
        ("..\\..\\windows\\system32\\evil.mp4", "evil.mp4"),
        ("/etc/cron.d/job.mp4", "job.mp4"),
        ("....//....//x.mp4", "x.mp4"),
        ("..", "upload"),
        ("invoice\u202egpj.mp4", "invoicegpj.mp4"),
    ],
)
def test_client_file_name_never_reaches_the_path(
    client: TestClient,
    keys: Keys,
    session: Session,
    tmp_path: Path,
    upload_dir: Path,
    video_bytes: bytes,
    client_name: str,
    shown: str,
) -> None:
    response = submit(client, keys.north, video_bytes, name=client_name, camera="gate")
    assert response.status_code == 201, response.text
    assert response.json()["input_name"] == shown
    [stored] = files_under(tmp_path)  # nothing anywhere else under tmp_path
    assert stored.parent == upload_dir
    assert UPLOAD_NAME.fullmatch(stored.name)
    assert stored_job(session, response.json()["id"]).input_name == shown


@pytest.mark.parametrize(
    ("raw_name", "status", "shown"),
    [
        (b"evil\x00.sh.mp4", 201, "evil.sh.mp4"),
        (b"ca\x01me\x1bra\x7f.mp4", 201, "camera.mp4"),
        (b"line\nbreak.mp4", 201, "linebreak.mp4"),
        (b"split\r\nX-Injected: 1.mp4", 201, '"split'),  # the injected line is just ignored
    ],
    ids=["nul", "control-chars", "newline", "crlf-header-injection"],
)
def test_control_characters_in_the_file_name(
    client: TestClient,
    keys: Keys,
    session: Session,
    tmp_path: Path,
    video_bytes: bytes,
    raw_name: bytes,
    status: int,
    shown: str | None,
) -> None:

    body, content_type = multipart_body({"camera": "gate"}, raw_name, video_bytes)
    response = client.post(
        "/v1/jobs", headers={**bearer(keys.north), "Content-Type": content_type}, content=body
    )
    assert response.status_code == status, response.text
    if shown is None:
        assert response.json() == {"detail": "malformed multipart body"}
        assert files_under(tmp_path) == []
        assert count_jobs(session) == 0
    else:
        assert response.json()["input_name"] == shown
        [stored] = files_under(tmp_path)
        assert UPLOAD_NAME.fullmatch(stored.name)


def test_body_without_its_closing_boundary_is_400(
    client: TestClient, keys: Keys, session: Session, tmp_path: Path, video_bytes: bytes
) -> None:
    body, content_type = multipart_body({"camera": "gate"}, b"clip.mp4", video_bytes)
    cut = body[: body.index(b"\r\n--mwtestboundary7d1f--")]
    response = client.post(
        "/v1/jobs", headers={**bearer(keys.north), "Content-Type": content_type}, content=cut
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": "malformed multipart body: it ends before its last boundary"
    }
    assert files_under(tmp_path) == []
    assert count_jobs(session) == 0


def test_unknown_extension_is_stored_as_bin(
    client: TestClient, keys: Keys, upload_dir: Path, video_bytes: bytes
) -> None:
    response = submit(client, keys.north, video_bytes, name="clip.php", camera="gate")
    assert response.status_code == 201  # ffprobe judges the bytes, not the name
    assert [p.suffix for p in files_under(upload_dir)] == [".bin"]


def test_oversized_upload_is_413_and_leaves_nothing(
    client: TestClient,
    keys: Keys,
    session: Session,
    queue: Queue,
    tmp_path: Path,
) -> None:
    # Just over the limit: passes the Content-Length pre-check, so it is cut off mid-stream.
    content = b"\0" * (256 * 1024 + 1)
    response = submit(client, keys.north, content, camera="gate")
    assert response.status_code == 413
    assert response.content == b'{"detail":"the file is larger than the limit of 262144 bytes"}'
    assert files_under(tmp_path) == []
    assert count_jobs(session) == 0
    assert queue.enqueued == []


def test_declared_oversized_body_is_refused_before_reading(
    client: TestClient, keys: Keys, session: Session, tmp_path: Path
) -> None:
    response = submit(client, keys.north, b"\0" * (1024 * 1024), camera="gate")
    assert response.status_code == 413
    assert files_under(tmp_path) == []
    assert count_jobs(session) == 0


def test_upload_at_the_limit_is_accepted_by_the_size_check(
    client: TestClient, keys: Keys, tmp_path: Path
) -> None:
    response = submit(client, keys.north, b"x" * (256 * 1024), camera="gate")
    assert response.status_code == 415  # not refused for its size, only for not being media
    assert files_under(tmp_path) == []


@pytest.mark.parametrize(
    ("form", "detail"),
    [
        ({"site": "north"}, "form field 'camera' is required"),
        ({"camera": "gate"}, "form field 'site' is required for a key not limited to one site"),
        ({"camera": " ", "site": "north"}, "camera must be 1 to 100 printable characters"),
        ({"camera": "g" * 101, "site": "north"}, "camera must be 1 to 100 printable characters"),
        ({"camera": "gate\n", "site": "no\x00rth"}, "site must be 1 to 100 printable characters"),
        ({"camera": "gate", "site": "north", "owner": "x"}, "unknown form field(s): owner"),
        (
            {"camera": "gate", "site": "north", "recorded_at": "2024-03-01T09:00:00"},
            "recorded_at needs a UTC offset, e.g. 2024-03-01T09:00:00Z",
        ),
        (
            {"camera": "gate", "site": "north", "recorded_at": "yesterday"},
            "recorded_at is not an ISO 8601 date and time: 'yesterday'",
        ),
        (
            {"camera": "gate", "site": "north", "recorded_at": "9999-12-31T23:59:59-01:00"},
            "recorded_at is out of range: '9999-12-31T23:59:59-01:00'",
        ),
        (
            {"camera": "gate", "site": "north", "recorded_at": "9999-12-31T23:59:59Z"},
            "recorded_at must be from 1970-01-01T00:00:00Z up to 2100-01-01T00:00:00Z, "
            "got '9999-12-31T23:59:59Z'",
        ),
        (
            {"camera": "gate", "site": "north", "recorded_at": "1969-12-31T23:59:59Z"},
            "recorded_at must be from 1970-01-01T00:00:00Z up to 2100-01-01T00:00:00Z, "
            "got '1969-12-31T23:59:59Z'",
        ),
        (
            {"camera": "gate", "site": "north", "detector": "mtcnn_union.pt"},
            "detector must be one of: accurate, fast",
        ),
    ],
)
def test_invalid_form_is_422_and_leaves_nothing(
    client: TestClient,
    keys: Keys,
    session: Session,
    tmp_path: Path,
    video_bytes: bytes,
    form: dict[str, str],
    detail: str,
) -> None:
    response = submit(client, keys.admin, video_bytes, **form)
    assert response.status_code == 422
    assert response.json() == {"detail": detail}
    assert files_under(tmp_path) == []
    assert count_jobs(session) == 0


def test_queue_down_fails_the_job_and_answers_503(
    client: TestClient, keys: Keys, queue: Queue, tmp_path: Path, video_bytes: bytes
) -> None:
    queue.fail = True
    response = submit(client, keys.north, video_bytes, camera="gate")
    assert response.status_code == 503
    assert response.json() == {"detail": "the job queue is unavailable; try again"}
    assert files_under(tmp_path) == []
    [job] = client.get("/v1/jobs", headers=bearer(keys.north)).json()["items"]
    assert job["status"] == "failed"
    assert job["error"] == "could not be queued: the job queue is unavailable"


def test_sql_looking_values_are_just_values(
    client: TestClient,
    keys: Keys,
    make_job: Callable[..., Job],
    session: Session,
    tmp_path: Path,
    video_bytes: bytes,
) -> None:
    make_job(site="north", camera="gate")
    make_job(site="south", camera="lobby")
    injection = "x' OR 1=1 --"
    for params in (
        {"site": injection},
        {"camera": injection},
        {"site": "north' --"},
        {"camera": "%"},
        {"site": "_orth"},
    ):
        response = client.get("/v1/jobs", params=params, headers=bearer(keys.admin))
        assert response.status_code == 200
        assert response.json() == {"items": [], "total": 0}
    for path in ("/v1/jobs/x' OR 1=1 --", "/v1/jobs/1 OR 1=1", "/v1/jobs/%27%3B--"):
        response = client.get(path, headers=bearer(keys.admin))
        assert (response.status_code, response.json()) == (404, {"detail": "job not found"})
    report = client.get("/v1/reports", params={"site": injection}, headers=bearer(keys.admin))
    assert report.json() == {"bucket": "hour", "items": []}
    for params in ({"status": injection}, {"site": "north\x00"}, {"camera": "a\nb"}):
        refused = client.get("/v1/jobs", params=params, headers=bearer(keys.admin))
        assert refused.status_code == 422, params
    # As a camera name it is stored literally and matches only itself.
    created = submit(client, keys.north, video_bytes, camera=injection)
    assert created.status_code == 201
    found = client.get("/v1/jobs", params={"camera": injection}, headers=bearer(keys.admin))
    assert [j["camera"] for j in found.json()["items"]] == [injection]
    assert count_jobs(session) == 3


def test_job_detail_shows_progress_timings_and_summary(
    client: TestClient, keys: Keys, make_job: Callable[..., Job]
) -> None:
    frames = [
        frame(0, 0.0, masked=2, unmasked=1),
        frame(5, 1.0, masked=1, unmasked=0, incorrect=1),
        frame(10, 2.0, masked=0, unmasked=0),
    ]
    people = [person(1, 0.0, "with_mask"), person(2, 1.0, "without_mask", seconds=1.0)]
    job = make_job(status=JobStatus.SUCCEEDED, frames=frames, people=people)
    body = client.get(f"/v1/jobs/{job.id}", headers=bearer(keys.north)).json()
    assert body["status"] == "succeeded"
    assert body["progress"] == {"frames_done": 3, "frames_total": 3}
    assert ISO_UTC.fullmatch(body["started_at"]) and ISO_UTC.fullmatch(body["finished_at"])
    assert body["summary"] == {
        "frames": 3,
        "frames_with_faces": 2,
        "faces": 5,
        "masked": 3,
        "unmasked": 1,
        "incorrect": 1,
        "compliance_ratio": 0.6,
        "people": {
            "total": 2,
            "masked": 1,
            "unmasked": 1,
            "incorrect": 0,
            "compliance_ratio": 0.5,
            "ever_unmasked": 1,
            "seconds_compliance_ratio": 0.6667,
        },
    }


def test_failed_job_shows_its_reason(
    client: TestClient, keys: Keys, make_job: Callable[..., Job]
) -> None:
    job = make_job(status=JobStatus.FAILED, error="entrance.mp4: no faces found")
    body = client.get(f"/v1/jobs/{job.id}", headers=bearer(keys.north)).json()
    assert (body["status"], body["error"], body["summary"]) == (
        "failed",
        "entrance.mp4: no faces found",
        None,
    )


def test_list_filters_pages_and_bounds(
    client: TestClient, keys: Keys, make_job: Callable[..., Job]
) -> None:
    a = make_job(site="north", camera="gate")
    b = make_job(
        site="north", camera="dock", status=JobStatus.SUCCEEDED, frames=[frame(0, 0, 1, 0)]
    )
    c = make_job(site="south", camera="gate", status=JobStatus.FAILED)
    ids = lambda r: [j["id"] for j in r.json()["items"]]  # noqa: E731
    auth = bearer(keys.admin)
    every = client.get("/v1/jobs", headers=auth)
    assert set(ids(every)) == {a.id, b.id, c.id} and every.json()["total"] == 3
    assert ids(
        client.get("/v1/jobs", params={"camera": "gate", "site": "south"}, headers=auth)
    ) == [c.id]
    succeeded = client.get("/v1/jobs", params={"status": "succeeded"}, headers=auth).json()
    assert [j["id"] for j in succeeded["items"]] == [b.id]
    assert succeeded["items"][0]["summary"]["faces"] == 1
    blank = client.get("/v1/jobs", params={"site": "", "camera": ""}, headers=auth).json()
    assert blank["total"] == 3  # blank filters filter nothing
    page = client.get("/v1/jobs", params={"limit": 2, "offset": 2}, headers=auth).json()
    assert len(page["items"]) == 1 and page["total"] == 3
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"status": "done"}):
        assert client.get("/v1/jobs", params=params, headers=auth).status_code == 422


def test_cancel_a_queued_job_then_again(
    client: TestClient, keys: Keys, make_job: Callable[..., Job], session: Session
) -> None:
    job = make_job()
    response = client.post(f"/v1/jobs/{job.id}/cancel", headers=bearer(keys.north))
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert response.json()["finished_at"] is not None
    assert stored_job(session, job.id).status is JobStatus.CANCELLED
    again = client.post(f"/v1/jobs/{job.id}/cancel", headers=bearer(keys.north))
    assert again.status_code == 409
    assert again.content == b'{"detail":"job already cancelled"}'


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED])
def test_cancel_a_finished_job_is_409(
    client: TestClient, keys: Keys, make_job: Callable[..., Job], status: JobStatus
) -> None:
    job = make_job(status=status, frames=[frame(0, 0, 1, 0)])
    response = client.post(f"/v1/jobs/{job.id}/cancel", headers=bearer(keys.north))
    assert (response.status_code, response.json()) == (409, {"detail": f"job already {status}"})


def test_cancel_a_running_job(client: TestClient, keys: Keys, make_job: Callable[..., Job]) -> None:
    job = make_job(status=JobStatus.RUNNING)
    response = client.post(f"/v1/jobs/{job.id}/cancel", headers=bearer(keys.north))
    assert (response.status_code, response.json()["status"]) == (202, "cancelled")


def test_frames_are_paged_in_frame_order(
    client: TestClient, keys: Keys, make_job: Callable[..., Job]
) -> None:
    frames = [frame(i * 6, round(i * 0.2, 4), masked=i % 3, unmasked=1) for i in range(7)]
    job = make_job(status=JobStatus.SUCCEEDED, frames=frames)
    assert job_rows(client, keys.north, job.id, "frames", offset=2, limit=3) == {
        "items": [
            {
                "frame_index": 12,
                "timestamp_s": 0.4,
                "faces": 3,
                "masked": 2,
                "unmasked": 1,
                "incorrect": 0,
                "mode": "analysed",
            },
            {
                "frame_index": 18,
                "timestamp_s": 0.6,
                "faces": 1,
                "masked": 0,
                "unmasked": 1,
                "incorrect": 0,
                "mode": "analysed",
            },
            {
                "frame_index": 24,
                "timestamp_s": 0.8,
                "faces": 2,
                "masked": 1,
                "unmasked": 1,
                "incorrect": 0,
                "mode": "analysed",
            },
        ],
        "total": 7,
    }


def test_recorded_at_defaults_to_submission_time(
    client: TestClient, keys: Keys, video_bytes: bytes
) -> None:
    before = datetime.now(UTC)
    body = submit(client, keys.north, video_bytes, camera="gate").json()
    recorded = datetime.fromisoformat(body["recorded_at"])
    assert before <= recorded <= datetime.now(UTC)
