"""Deleting a job while real workers analyse it: its rows go, nothing comes back, the workers
carry on with the next job."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from storage.models import FaceDetection, FrameStat, JobSegment, JobStatus
from storage.repositories import jobs as job_repo
from tests.distributed.dist_support import (
    SAMPLE_FPS,
    Cluster,
    wait_finished,
    wait_for_stored_batch,
)
from tests.polling import wait_for
from worker import retention
from worker.dispatch import cancel_job

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def rows_left(session_factory: sessionmaker[Session], job_id: str) -> int:
    with session_factory() as session:
        return sum(
            int(session.scalar(select(func.count()).select_from(m).where(m.job_id == job_id)) or 0)
            for m in (FrameStat, FaceDetection, JobSegment)
        )


def test_deleting_a_running_job_removes_it_and_the_workers_go_on(
    cluster: Cluster, videos: dict[str, Path], tmp_path: Path
) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    upload = uploads / "5d1e.mp4"
    shutil.copy(videos["20s"], upload)
    job_id = cluster.submit(upload.resolve(), sample_fps=3.0)
    wait_for_stored_batch(cluster.session_factory, job_id)
    with cluster.session_factory() as session:
        job = job_repo.get_job(session, job_id)
        assert job is not None
        gone = retention.delete_job(session, job, uploads, cancel_job)
        session.commit()
    assert gone[0] == upload.resolve()
    assert retention.remove_files(gone) == 1  # the upload: nothing was rendered from it

    def every_segment_reported() -> bool:
        logs = cluster.fleet.logs(tail_chars=1_000_000)
        return all(f"job {job_id} segment {i}" in logs for i in range(5))

    wait_for(every_segment_reported, 60, "every segment task of the deleted job to end")
    logs = cluster.fleet.logs(tail_chars=1_000_000)
    # A task storing a batch at that moment meets a missing job, and says so without a fuss.
    assert f"job {job_id} segment" in logs and "IntegrityError" not in logs
    assert rows_left(cluster.session_factory, job_id) == 0
    with cluster.session_factory() as session:
        assert job_repo.get_job(session, job_id) is None
    assert not upload.exists()

    # The same workers analyse the next job as usual.
    next_id = cluster.submit(videos["16s"], sample_fps=SAMPLE_FPS)
    job = wait_finished(cluster.session_factory, next_id, timeout_s=120)
    assert (job.status, job.error, job.frames_done) == (JobStatus.SUCCEEDED, None, 32)
    assert rows_left(cluster.session_factory, job_id) == 0
