"""The hostile-input corpus in the worker: handed any of its files directly (as if swapped
after the API accepted an upload), real workers fail the job with the same reason, naming
the user's file, leave nothing in flight, and carry on with the next job."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.uploads import display_name, safe_extension
from ml.footage import make_truncated_copy
from storage.models import JobStatus, SegmentStatus
from tests.db_support import add_video_job
from tests.distributed.dist_support import (
    Cluster,
    frame_rows,
    segment_rows,
    wait_finished,
)
from tests.fixtures.hostile import HOSTILE_FILES
from worker.dispatch import enqueue_job
from worker.pipeline.analyze import AnalysisSettings

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

# Past the door, only the worker can find out: the index is intact, the frames are not.
TRUNCATED_REASON = "entrance.mp4: the file is truncated or corrupt ("


def _stored_job(session_factory: sessionmaker[Session], uploads: Path, name: str,
                content: bytes) -> str:
    """A queued job as the API stores one: a generated file name, the user's name shown."""
    shown = display_name(name)
    stored = uploads / f"{uuid.uuid4().hex}{safe_extension(shown)}"
    stored.write_bytes(content)
    with session_factory() as session:
        settings = AnalysisSettings(sample_fps=2.0).to_dict()
        job = add_video_job(
            session, stored, input_name=shown, settings=settings, site="dist-test",
            camera="hostile",
        )
        session.commit()
        return job.id


def test_every_hostile_file_fails_its_job_cleanly_and_the_workers_carry_on(
    cluster: Cluster, videos: dict[str, Path], tmp_path: Path
) -> None:
    pools_before = cluster.fleet.pool_pids()
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    media = tmp_path / "media"
    media.mkdir()
    expected: dict[str, str] = {}
    for case in HOSTILE_FILES:
        job_id = _stored_job(cluster.session_factory, uploads, case.name, case.make(media))
        expected[job_id] = case.reason
    truncated = make_truncated_copy(videos["16s"], tmp_path / "cut.mp4", 0.5)
    truncated_id = _stored_job(
        cluster.session_factory, uploads, "entrance.mp4", truncated.read_bytes()
    )
    expected[truncated_id] = TRUNCATED_REASON
    for job_id in expected:
        enqueue_job(job_id, celery=cluster.celery)

    for job_id, reason in expected.items():
        job = wait_finished(cluster.session_factory, job_id, timeout_s=120)
        assert job.status is JobStatus.FAILED, (job.input_name, job.error)
        assert job.error is not None and job.error.startswith(reason), job.error
        assert str(tmp_path) not in job.error, "no server path"
        assert not re.search(r"[0-9a-f]{32}", job.error), "no stored (generated) name"
        assert [s.status for s in segment_rows(cluster.session_factory, job_id)
                if s.status in (SegmentStatus.PENDING, SegmentStatus.RUNNING)] == []
        if reason != TRUNCATED_REASON:  # refused before decoding: no frame was stored
            assert frame_rows(cluster.session_factory, job_id) == []

    # The same worker processes are alive and analyse the next job in full.
    assert cluster.fleet.pool_pids() == pools_before
    good = cluster.submit(videos["16s"], sample_fps=0.5)
    job = wait_finished(cluster.session_factory, good, timeout_s=120)
    assert (job.status, job.error, job.frames_done) == (JobStatus.SUCCEEDED, None, 8)
