"""A worker process killed in the middle of a segment loses neither the job nor a frame."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from storage.models import JobSegment, JobStatus, SegmentStatus
from tests.distributed.dist_support import (
    Cluster,
    assert_same_as_an_undisturbed_run,
    frames_stored_once,
    segment_pid,
    segment_rows,
    segments_mid_way,
    wait_finished,
)
from tests.polling import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SAMPLE_FPS = 3.0  # 12 frames per 4 s segment: three batches, so there is a middle to kill in
SEGMENT_FRAMES = 12


def test_sigkill_of_the_process_running_a_segment_still_completes_the_job_exactly(
    cluster: Cluster, videos: dict[str, Path]
) -> None:
    job_id = cluster.submit(videos["20s"], sample_fps=SAMPLE_FPS)

    def segment_half_done() -> JobSegment | None:
        mid_way = segments_mid_way(cluster.session_factory, job_id, before_frames=SEGMENT_FRAMES)
        return mid_way[0] if mid_way else None

    victim = wait_for(segment_half_done, 60, "a segment with a batch stored", interval_s=0.05)
    pid = segment_pid(victim)
    assert pid in cluster.fleet.pool_pids(), "the segment's process must be one of our workers'"
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, f"pid {pid} to be reaped")

    job = wait_finished(cluster.session_factory, job_id, timeout_s=90)
    assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
    rows = frames_stored_once(cluster.session_factory, job_id)
    assert len(rows) == job.frames_total == job.frames_done == 60

    after = {s.segment_index: s for s in segment_rows(cluster.session_factory, job_id)}
    rerun = after[victim.segment_index]
    assert rerun.status is SegmentStatus.SUCCEEDED
    assert rerun.attempts == victim.attempts + 1  # redelivered once, same task id
    assert rerun.task_id == victim.task_id
    assert rerun.frames_done == SEGMENT_FRAMES
    assert "exited with 'signal 9 (SIGKILL)'" in cluster.fleet.logs(tail_chars=1_000_000)

    assert_same_as_an_undisturbed_run(cluster, job_id, videos["20s"], sample_fps=SAMPLE_FPS)
