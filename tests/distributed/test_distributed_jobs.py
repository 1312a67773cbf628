"""Jobs run by real `maskwatch worker` processes: same rows as in-process, bad input, cancel."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from storage.models import FrameStat, JobStatus, SegmentStatus
from storage.repositories import jobs as job_repo
from storage.repositories import reports as report_repo
from tests.distributed.dist_support import (
    BATCH_FRAMES,
    SAMPLE_FPS,
    SEGMENT_SECONDS,
    Cluster,
    face_rows,
    frame_rows,
    get_job,
    run_in_process,
    segment_rows,
    wait_finished,
    wait_for_stored_batch,
)
from tests.polling import wait_for
from worker.dispatch import cancel_job

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_two_workers_store_the_same_frames_as_the_in_process_run(
    cluster: Cluster, videos: dict[str, Path]
) -> None:
    video = videos["16s"]
    distributed_id = cluster.submit(video, sample_fps=SAMPLE_FPS)

    local_id = run_in_process(cluster.session_factory, video, sample_fps=SAMPLE_FPS)

    job = wait_finished(cluster.session_factory, distributed_id, timeout_s=90)
    local = get_job(cluster.session_factory, local_id)
    assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
    assert local.status is JobStatus.SUCCEEDED

    rows = frame_rows(cluster.session_factory, distributed_id)
    assert rows == frame_rows(cluster.session_factory, local_id)
    assert face_rows(cluster.session_factory, distributed_id) == face_rows(
        cluster.session_factory, local_id
    )
    assert len(rows) == job.frames_total == job.frames_done == local.frames_total == 32
    assert sum(row[2] for row in rows) > 0  # faces were found: the comparison means something
    with cluster.session_factory() as session:
        assert report_repo.job_summary(session, distributed_id) == report_repo.job_summary(
            session, local_id
        )

    segments = segment_rows(cluster.session_factory, distributed_id)
    assert SEGMENT_SECONDS == 4
    assert [(s.start_s, s.end_s) for s in segments] == [(0, 4), (4, 8), (8, 12), (12, None)]
    assert {s.status for s in segments} == {SegmentStatus.SUCCEEDED}
    assert sum(s.frames_done for s in segments) == len(rows)
    assert len({s.worker for s in segments}) >= 2, "both workers should have taken segments"


def test_bad_input_fails_the_job_with_its_reason_and_the_worker_goes_on(
    cluster: Cluster, videos: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "lobby-notes.mp4"
    bad.write_text("Opening hours: 8 to 18. This is not a video.\n")
    log_sizes = cluster.fleet.log_sizes()
    bad_id = cluster.submit(bad, sample_fps=SAMPLE_FPS)

    job = wait_finished(cluster.session_factory, bad_id, timeout_s=30)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.startswith("lobby-notes.mp4: not a readable video")
    assert str(tmp_path) not in job.error  # no server path in what users see
    assert segment_rows(cluster.session_factory, bad_id) == []
    # Bad input is never retried: one attempt, logged once, no retry scheduled.
    logs = cluster.fleet.logs_since(log_sizes)
    assert logs.count(f"job {bad_id} failed on its input") == 1
    assert "Retry in" not in logs

    good_id = cluster.submit(videos["16s"], sample_fps=SAMPLE_FPS)
    good = wait_finished(cluster.session_factory, good_id, timeout_s=90)
    assert (good.status, good.error) == (JobStatus.SUCCEEDED, None)
    assert good.frames_done == good.frames_total == 32


def _frame_count(session_factory: sessionmaker[Session], job_id: str) -> int:
    with session_factory() as session:
        query = select(func.count(FrameStat.id)).where(FrameStat.job_id == job_id)
        return session.scalar(query) or 0


def test_cancelled_job_stops_at_the_next_batch_and_stays_cancelled(
    cluster: Cluster, videos: dict[str, Path]
) -> None:
    # 20 s at 3 fps: 60 frames in 5 segments of 12, stored 4 at a time.
    job_id = cluster.submit(videos["20s"], sample_fps=3.0)
    wait_for_stored_batch(cluster.session_factory, job_id)
    with cluster.session_factory() as session:
        job = job_repo.get_job(session, job_id)
        assert job is not None
        cancel_job(session, job)
        session.commit()
    stored_at_cancel = _frame_count(cluster.session_factory, job_id)

    # Every segment's task reports how it ended: stopped mid-way, skipped, or done before.
    def every_segment_reported() -> bool:
        logs = cluster.fleet.logs(tail_chars=1_000_000)
        return all(f"job {job_id} segment {i}" in logs for i in range(5))

    wait_for(every_segment_reported, 60, "every segment task of the cancelled job to end")
    stored = _frame_count(cluster.session_factory, job_id)
    job = get_job(cluster.session_factory, job_id)
    assert job.status is JobStatus.CANCELLED
    assert job.finished_at is not None
    assert job.frames_total == 60
    assert stored < 60
    # At most one more batch per task running at the time (two workers).
    assert stored - stored_at_cancel <= 2 * BATCH_FRAMES
    assert f"job {job_id} is cancelled" in cluster.fleet.logs(tail_chars=1_000_000)
    segments = segment_rows(cluster.session_factory, job_id)
    assert {s.status for s in segments} <= {SegmentStatus.CANCELLED, SegmentStatus.SUCCEEDED}
    assert SegmentStatus.CANCELLED in {s.status for s in segments}

    # Nothing writes to it or flips it back later.
    time.sleep(2)
    assert _frame_count(cluster.session_factory, job_id) == stored
    assert get_job(cluster.session_factory, job_id).status is JobStatus.CANCELLED
