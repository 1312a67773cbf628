"""DELETE /v1/jobs/{id} removes a job's upload and every row of it; POST .../cancel stops one;
upload retention deletes old footage and keeps the statistics. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage.models import FaceDetection, FrameStat, Job, JobSegment, JobStatus, Track, utcnow
from storage.repositories import frames as frame_repo
from storage.repositories import jobs as job_repo
from storage.repositories import reports as report_repo
from storage.repositories import segments as segment_repo
from storage.repositories import tracks as track_repo
from tests.api.api_support import Keys, bearer, files_under, frame, person
from worker import retention
from worker.evidence import video_path


def rows_of(session: Session, job_id: str) -> dict[str, int]:
    session.expire_all()
    return {
        model.__tablename__: int(
            session.scalar(select(func.count()).select_from(model).where(model.job_id == job_id))
            or 0
        )
        for model in (FrameStat, FaceDetection, JobSegment, Track)
    } | {"jobs": int(session.scalar(select(func.count(Job.id)).where(Job.id == job_id)) or 0)}


@pytest.fixture
def analysed_upload(
    client: TestClient, keys: Keys, session: Session, video_bytes: bytes
) -> Callable[[JobStatus], Job]:
    """A job submitted through the API, with segments, frames, faces and tracks stored."""

    def make(status: JobStatus) -> Job:
        response = client.post(
            "/v1/jobs",
            headers=bearer(keys.north),
            data={"camera": "gate"},
            files={"file": ("entrance.mp4", video_bytes, "application/octet-stream")},
        )
        assert response.status_code == 201, response.text
        job = job_repo.get_job(session, response.json()["id"])
        assert job is not None
        job_repo.mark_running(session, job, 2)
        segment_repo.create_segments(session, job.id, [(0.0, 0.5), (0.5, None)])
        track_ids = track_repo.save_tracks(
            session, job, [person(1, 0.0, "with_mask"), person(2, 0.0, "without_mask")], {}
        )
        first = frame(0, 0.0, 1, 1)  # its faces are the two people's
        first = replace(first, detections=[
            replace(face, track_key=key) for face, key in zip(first.detections, (1, 2), strict=True)
        ])
        frame_repo.replace_frames(session, job, [first, frame(3, 0.6, 2, 0)], track_ids)
        if status is JobStatus.SUCCEEDED:
            job_repo.mark_succeeded(session, job)
        elif status is JobStatus.FAILED:
            job_repo.mark_failed(session, job, "entrance.mp4: the file is truncated")
        session.commit()
        return job

    return make


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.RUNNING])
def test_delete_removes_the_upload_and_every_row_of_the_job(
    client: TestClient,
    keys: Keys,
    session: Session,
    upload_dir: Path,
    analysed_upload: Callable[[JobStatus], Job],
    status: JobStatus,
) -> None:
    job_id = analysed_upload(status).id
    [upload] = files_under(upload_dir)
    rendered = video_path(upload_dir, job_id)  # an annotated video made from the footage
    rendered.parent.mkdir(parents=True)
    rendered.write_bytes(b"rendered frames")
    assert rows_of(session, job_id) == {
        "frame_stats": 2, "face_detections": 4, "job_segments": 2, "tracks": 2, "jobs": 1
    }
    response = client.delete(f"/v1/jobs/{job_id}", headers=bearer(keys.north))
    assert (response.status_code, response.content) == (204, b"")
    assert not upload.exists() and not rendered.exists() and files_under(upload_dir) == []
    assert rows_of(session, job_id) == {
        "frame_stats": 0, "face_detections": 0, "job_segments": 0, "tracks": 0, "jobs": 0
    }
    assert client.get(f"/v1/jobs/{job_id}", headers=bearer(keys.north)).status_code == 404
    again = client.delete(f"/v1/jobs/{job_id}", headers=bearer(keys.north))
    assert (again.status_code, again.json()) == (404, {"detail": "job not found"})


def test_delete_of_a_running_job_cancels_it_first(
    app_factory: Callable[..., Any],
    keys: Keys,
    session: Session,
    analysed_upload: Callable[[JobStatus], Job],
) -> None:
    cancelled: list[tuple[str, JobStatus]] = []

    def cancel(db: Session, job: Job) -> None:
        job_repo.mark_cancelled(db, job)
        cancelled.append((job.id, job.status))

    with TestClient(app_factory(cancel=cancel), raise_server_exceptions=False) as client:
        job_id = analysed_upload(JobStatus.RUNNING).id
        response = client.delete(f"/v1/jobs/{job_id}", headers=bearer(keys.north))
    assert response.status_code == 204
    assert cancelled == [(job_id, JobStatus.CANCELLED)]
    assert rows_of(session, job_id)["jobs"] == 0


def test_delete_never_touches_a_file_outside_the_upload_folder(
    client: TestClient,
    keys: Keys,
    session: Session,
    make_job: Callable[..., Job],
    tmp_path: Path,
) -> None:
    # A `maskwatch analyze` job reads the user's own file: deleting the job keeps the file.
    own = tmp_path / "my-footage.mp4"
    own.write_bytes(b"not ours")
    job_id = make_job(status=JobStatus.SUCCEEDED, frames=[frame(0, 0.0, 1, 0)]).id
    session.execute(update(Job).where(Job.id == job_id).values(input_path=str(own)))
    session.commit()
    assert client.delete(f"/v1/jobs/{job_id}", headers=bearer(keys.north)).status_code == 204
    assert own.read_bytes() == b"not ours"
    assert rows_of(session, job_id)["jobs"] == 0


def test_cancel_keeps_the_job_and_what_it_stored(
    client: TestClient,
    keys: Keys,
    session: Session,
    upload_dir: Path,
    analysed_upload: Callable[[JobStatus], Job],
) -> None:
    job = analysed_upload(JobStatus.RUNNING)
    response = client.post(f"/v1/jobs/{job.id}/cancel", headers=bearer(keys.north))
    assert (response.status_code, response.json()["status"]) == (202, "cancelled")
    assert rows_of(session, job.id)["frame_stats"] == 2
    assert len(files_under(upload_dir)) == 1


def test_retention_deletes_old_uploads_and_keeps_their_statistics(
    session: Session,
    upload_dir: Path,
    make_job: Callable[..., Job],
    analysed_upload: Callable[[JobStatus], Job],
    tmp_path: Path,
) -> None:
    old = analysed_upload(JobStatus.SUCCEEDED)
    recent = analysed_upload(JobStatus.FAILED)
    running = analysed_upload(JobStatus.RUNNING)
    cli_job = make_job(status=JobStatus.SUCCEEDED, frames=[frame(0, 0.0, 1, 0)])
    own = tmp_path / "users-own.mp4"
    own.write_bytes(b"x")
    eleven_days_ago = utcnow() - timedelta(days=11)
    for job_id in (old.id, cli_job.id):
        session.execute(update(Job).where(Job.id == job_id).values(finished_at=eleven_days_ago))
    session.execute(update(Job).where(Job.id == cli_job.id).values(input_path=str(own)))
    session.execute(update(Job).where(Job.id == running.id).values(created_at=eleven_days_ago))
    session.commit()
    uploads = {job.id: Path(job.input_path) for job in (old, recent, running)}

    rendered = {job.id: video_path(upload_dir, job.id) for job in (old, recent)}
    for video in rendered.values():
        video.parent.mkdir(parents=True, exist_ok=True)
        video.write_bytes(b"rendered frames")

    expired = retention.expire_uploads(session, upload_dir, retention_days=10)
    session.commit()
    assert expired.job_ids == [old.id]
    assert retention.remove_files(expired.files) == 2  # the footage and its rendering
    assert not uploads[old.id].exists() and not rendered[old.id].exists()
    assert rendered[recent.id].exists()
    assert uploads[recent.id].exists() and uploads[running.id].exists() and own.exists()
    session.expire_all()
    kept = job_repo.get_job(session, old.id)
    assert kept is not None and kept.input_path == job_repo.FOOTAGE_REMOVED
    assert report_repo.job_summary(session, old.id).faces == 4  # the statistics stay
    # A second pass finds nothing more to do.
    assert retention.expire_uploads(session, upload_dir, retention_days=10).job_ids == []
