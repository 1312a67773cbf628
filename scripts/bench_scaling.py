"""Wall time of one job on 1 and on 2 `maskwatch worker` processes, end to end.

Usage: python scripts/bench_scaling.py [--clip PATH] [--seconds 30] [--sample-fps 5]
           [--segment-seconds 5] [--workers 1,2] [--json]

Needs the local PostgreSQL and Redis (scripts/ensure-services.sh). It recreates the database
``maskwatch_bench`` and flushes Redis database 6. Without --clip a 640x360 10 fps clip of
``--seconds`` is generated from the committed test faces. Each worker runs one pool process
with one torch thread. Also prints the database cost of storing one batch of frames.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import _repo  # noqa: F401  (puts the repository root on sys.path)
import redis

from maskwatch.core.records import FaceRecord, FrameRecord
from maskwatch.settings import Settings
from scripts.cluster_support import fresh_database
from storage.db import make_engine, make_session_factory
from storage.repositories import frames as frame_repo
from storage.repositories import jobs as job_repo
from tests.db_support import add_video_job
from tests.distributed.dist_support import (
    WorkerFleet,
    create_job,
    segment_rows,
    wait_finished,
)
from worker.celery_app import create_app
from worker.dispatch import enqueue_job

logger = logging.getLogger("bench_scaling")

DATABASE = "maskwatch_bench"
BROKER_URL = "redis://127.0.0.1:6379/6"


def generated_clip(out_dir: Path, seconds: int) -> Path:
    from ml.footage import make_composition_video

    pattern = [(1, 1), (2, 0), (0, 2), (2, 1), (1, 2)]
    scenes = [pattern[i % len(pattern)] for i in range(seconds // 2)]
    return make_composition_video(out_dir / f"bench-{seconds}s.mp4", scenes)


def run_once(
    workers: int, clip: Path, database_url: str, sample_fps: float, segment_s: float, logs: Path
) -> dict[str, float]:
    """Start ``workers`` workers, run one job, stop them; the job's timings in seconds."""
    redis.Redis.from_url(BROKER_URL).flushdb()
    fleet = WorkerFleet(
        env={
            "MASKWATCH_DATABASE_URL": database_url,
            "MASKWATCH_BROKER_URL": BROKER_URL,
            "MASKWATCH_TORCH_THREADS": "1",
            "MASKWATCH_SEGMENT_SECONDS": str(segment_s),
        },
        log_dir=logs,
    )
    factory = make_session_factory(make_engine(database_url))
    celery = create_app(Settings(broker_url=BROKER_URL, database_url=database_url))
    try:
        fleet.start_ready(*(f"bench{index}" for index in range(workers)))
        pool = sorted(fleet.pool_pids())
        cpu_before = sum(cpu_seconds(pid) for pid in pool)
        load_before = os.getloadavg()[0]
        job_id = create_job(factory, clip, sample_fps=sample_fps)
        started = time.perf_counter()
        enqueue_job(job_id, celery=celery)
        job = wait_finished(factory, job_id, timeout_s=1800)
        wall_s = time.perf_counter() - started
        cpu_s = sum(cpu_seconds(pid) for pid in pool) - cpu_before
        if job.status != "succeeded":
            raise RuntimeError(f"job {job_id} {job.status}: {job.error}")
        segments = segment_rows(factory, job_id)
        assert job.started_at is not None and job.finished_at is not None
        return {
            "workers": workers,
            "frames": job.frames_done,
            "segments": len(segments),
            "wall_s": round(wall_s, 2),
            "db_started_to_finished_s": round(
                (job.finished_at - job.started_at).total_seconds(), 2
            ),
            "frames_per_s": round(job.frames_done / wall_s, 2),
            # CPU time of the pool processes (and their ffmpeg children, once reaped): what
            # the job costs whatever else the machine runs.
            "pool_cpu_s": round(cpu_s, 2),
            "load_avg_1min_before": round(load_before, 2),
            "load_avg_1min_after": round(os.getloadavg()[0], 2),
        }
    finally:
        fleet.stop_all()
        celery.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its reaped children (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # utime, stime, cutime, cstime are fields 14-17 of stat, 12-15 after the command name.
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def batch_write_cost(
    database_url: str, batches: int = 40, frames: int = 25, faces: int = 3
) -> dict:
    """Mean time to store (replace + commit) one batch of frames with their faces."""
    factory = make_session_factory(make_engine(database_url))
    with factory() as session:
        job = add_video_job(
            session, "/dev/null", site="bench", camera="db", input_name="write-cost"
        )
        session.commit()
        face = FaceRecord(10, 10, 60, 70, "with_mask", 0.9, 0.99)
        started = time.perf_counter()
        for batch in range(batches):
            records = [
                FrameRecord(
                    frame_index=i,
                    timestamp_s=i / 5,
                    faces=faces,
                    masked=faces,
                    detections=[face] * faces,
                )
                for i in range(batch * frames, (batch + 1) * frames)
            ]
            frame_repo.replace_frames(session, job, records)
            job_repo.add_progress(session, job.id, frames)
            session.commit()
        elapsed = time.perf_counter() - started
    return {
        "frames_per_batch": frames,
        "faces_per_frame": faces,
        "ms_per_batch": round(1000 * elapsed / batches, 2),
        "us_per_frame": round(1e6 * elapsed / (batches * frames), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--sample-fps", type=float, default=5.0)
    parser.add_argument("--segment-seconds", type=float, default=5.0)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    tmp = Path(tempfile.mkdtemp(prefix="maskwatch-bench-scaling-"))
    clip = args.clip or generated_clip(tmp, args.seconds)
    database_url = fresh_database(DATABASE)
    runs = []
    for count in (int(n) for n in args.workers.split(",")):
        logs = tmp / f"logs-{count}"
        logs.mkdir()
        logger.info("running one job on %d worker(s)...", count)
        runs.append(
            run_once(count, clip, database_url, args.sample_fps, args.segment_seconds, logs)
        )
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "clip": {"path": str(clip), "seconds": args.seconds, "size": "640x360"},
        "sample_fps": args.sample_fps,
        "segment_seconds": args.segment_seconds,
        "runs": runs,
        "db_batch_write": batch_write_cost(database_url),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"clip {clip.name}, sample_fps {args.sample_fps}, segments of {args.segment_seconds} s, "
        f"{os.cpu_count()} CPUs"
    )
    base = runs[0]["wall_s"]
    for run in runs:
        print(
            f"  {run['workers']} worker(s): {run['frames']} frames in {run['segments']} segments, "
            f"wall {run['wall_s']:.1f} s ({run['frames_per_s']:.1f} frames/s), "
            f"speed-up x{base / run['wall_s']:.2f}, pool CPU {run['pool_cpu_s']:.1f} s, "
            f"load {run['load_avg_1min_before']:.1f}"
        )
    cost = result["db_batch_write"]
    print(
        f"  storing a batch of {cost['frames_per_batch']} frames x {cost['faces_per_frame']} "
        f"faces: {cost['ms_per_batch']} ms ({cost['us_per_frame']} us per frame)"
    )


if __name__ == "__main__":
    main()
