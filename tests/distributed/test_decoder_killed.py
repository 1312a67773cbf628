"""An ffmpeg killed in the middle of a segment is a fault: the segment is retried, the job
ends with the counts of an undisturbed run."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from storage.models import JobStatus
from tests.distributed.dist_support import (
    Cluster,
    assert_same_as_an_undisturbed_run,
    child_pids,
    frames_stored_once,
    segment_pid,
    segments_mid_way,
    wait_finished,
)
from tests.polling import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SAMPLE_FPS = 3.0  # 12 frames per 4 s segment: ffmpeg is still running after the first batch


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_a_killed_ffmpeg_is_retried_and_the_job_succeeds_exactly(
    cluster: Cluster, videos: dict[str, Path]
) -> None:
    job_id = cluster.submit(videos["20s"], sample_fps=SAMPLE_FPS)

    def decoding_ffmpeg() -> int | None:
        for segment in segments_mid_way(cluster.session_factory, job_id):
            for pid in child_pids(segment_pid(segment)):
                if _command(pid) == "ffmpeg":
                    return pid
        return None

    ffmpeg_pid = wait_for(decoding_ffmpeg, 60, "an ffmpeg mid-segment", interval_s=0.05)
    os.kill(ffmpeg_pid, signal.SIGKILL)  # as the OOM killer does

    job = wait_finished(cluster.session_factory, job_id, timeout_s=120)
    assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
    rows = frames_stored_once(cluster.session_factory, job_id)
    assert len(rows) == job.frames_total == job.frames_done == 60
    assert "ffmpeg was killed by SIGKILL" in cluster.fleet.logs(tail_chars=1_000_000)
    assert "retry" in cluster.fleet.logs(tail_chars=1_000_000).lower()
    assert_same_as_an_undisturbed_run(cluster, job_id, videos["20s"], sample_fps=SAMPLE_FPS)
