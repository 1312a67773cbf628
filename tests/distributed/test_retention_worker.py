"""A real worker applies MASKWATCH_UPLOAD_RETENTION_DAYS on its own, periodically."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Job, utcnow
from storage.repositories import jobs as job_repo
from tests.db_support import add_video_job
from tests.distributed.dist_support import WorkerFleet, get_job
from tests.polling import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def finished_upload_job(
    session_factory: sessionmaker[Session], upload: Path, finished_days_ago: float
) -> str:
    with session_factory() as session:
        job = add_video_job(
            session,
            upload.resolve(),
            settings={"sample_fps": 2.0},
            site="retention",
            input_name="entrance.mp4",
        )
        job_repo.mark_running(session, job, 0)
        job_repo.mark_failed(session, job, "entrance.mp4: the file is truncated")
        session.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(finished_at=utcnow() - timedelta(days=finished_days_ago))
        )
        session.commit()
        return job.id


def test_a_worker_deletes_uploads_past_their_retention(
    broker_url: str,
    database_url: str,
    session_factory: sessionmaker[Session],
    fleet_factory: Callable[..., WorkerFleet],
    tmp_path: Path,
) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    old, young = uploads / "old.mp4", uploads / "young.mp4"
    old.write_bytes(b"footage of people")
    young.write_bytes(b"footage of people")
    old_id = finished_upload_job(session_factory, old, finished_days_ago=31)
    young_id = finished_upload_job(session_factory, young, finished_days_ago=29)

    fleet = fleet_factory(
        broker_url,
        database_url,
        MASKWATCH_UPLOAD_DIR=str(uploads),
        MASKWATCH_UPLOAD_RETENTION_DAYS="30",
        MASKWATCH_RETENTION_INTERVAL_S="1",
    )
    worker = fleet.start("keeper")
    wait_for(lambda: not old.exists(), 30, "the old upload to be deleted", interval_s=0.2)
    assert young.exists()
    assert get_job(session_factory, old_id).input_path == job_repo.FOOTAGE_REMOVED
    assert get_job(session_factory, young_id).input_path == str(young.resolve())
    assert "deleted 1 upload(s) of jobs finished over 30 day(s) ago" in worker.log()
