"""Real workers: a file that only claims to be long stays a tiny job, and workers are shared
fairly between sites (a site's backlog does not hold back another site's first job)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from storage.models import JobStatus, SegmentStatus
from storage.repositories import reports as report_repo
from tests.distributed.dist_support import (
    SAMPLE_FPS,
    Cluster,
    get_job,
    segment_rows,
    wait_finished,
)
from tests.fixtures.timestamps import make_sparse_video
from tests.polling import wait_for
from worker.dispatch import queued_messages

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_two_frames_a_million_seconds_apart_are_one_segment_of_two_frames(
    cluster: Cluster, broker_url: str, tmp_path: Path
) -> None:
    # The 22 KB upload of issue 16 used to become 33,334 segments (Redis 1.7 -> 38 MB).
    clip = make_sparse_video(tmp_path / "claims-11-days.mkv", [0.0, 1_000_000.0])
    job_id = cluster.submit(clip, sample_fps=5.0, site="bounds")
    job = wait_finished(cluster.session_factory, job_id, timeout_s=120)
    assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
    assert (job.frames_total, job.frames_done) == (2, 2)
    [segment] = segment_rows(cluster.session_factory, job_id)
    assert (segment.start_s, segment.end_s, segment.status) == (0.0, None, SegmentStatus.SUCCEEDED)
    with cluster.session_factory() as session:
        summary = report_repo.job_summary(session, job_id)
    assert (summary.frames, summary.faces) == (2, 4)  # one masked, one bare face per frame
    client = redis.Redis.from_url(broker_url)
    assert queued_messages(client) == 0
    client.close()


def test_a_sites_first_job_is_not_held_behind_another_sites_backlog(
    cluster: Cluster, videos: dict[str, Path]
) -> None:
    big = [  # 20 segments
        cluster.submit(videos["20s"], sample_fps=SAMPLE_FPS, site="big-site") for _ in range(4)
    ]

    def all_planned() -> bool:
        return all(get_job(cluster.session_factory, j).status is JobStatus.RUNNING for j in big)

    wait_for(all_planned, 60, "the big site's jobs to be planned", interval_s=0.1)
    small = cluster.submit(videos["16s"], sample_fps=SAMPLE_FPS, site="small-site")  # 4 segments

    small_done = wait_finished(cluster.session_factory, small, timeout_s=240)
    assert small_done.status is JobStatus.SUCCEEDED
    for job_id in big:
        job = wait_finished(cluster.session_factory, job_id, timeout_s=240)
        assert job.status is JobStatus.SUCCEEDED
    finished_after = [
        s
        for job_id in big
        for s in segment_rows(cluster.session_factory, job_id)
        if s.updated_at > small_done.finished_at  # type: ignore[operator]
    ]
    # First come, first served, the small site would wait for all 20 (none after it). Banded
    # by backlog, its 4 segments run among the big site's first few.
    assert len(finished_after) >= 8, [s.updated_at for s in finished_after]
