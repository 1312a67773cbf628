"""How long a small site's job waits behind another site's backlog: fair sharing vs FIFO.

Usage: python scripts/measure_fairness.py [--big-jobs 4] [--workers 1] [--json]

Needs the local PostgreSQL (scripts/ensure-services.sh) and `redis-server` on the PATH. It
recreates the database ``maskwatch_fairness`` and starts a private redis-server on a free
port. For each mode (MASKWATCH_FAIR_SHARE true, then false) it starts fresh workers (one pool
process, one torch thread each), queues ``--big-jobs`` jobs for site "big" (6 segments each,
a generated 12 s clip), waits until they are planned, then queues one job for site "small"
and measures its wait: from its creation to its end. Figures go in docs/deployment.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import _repo  # noqa: F401  (puts the repository root on sys.path)
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from maskwatch.settings import Settings
from ml.footage import make_composition_video
from scripts.cluster_support import fresh_database
from storage.db import make_engine, make_session_factory
from storage.models import JobStatus
from tests.distributed.dist_support import (
    RedisServer,
    WorkerFleet,
    get_job,
    segment_rows,
    submit_job,
    wait_finished,
)
from tests.polling import wait_for
from tests.processes import free_port
from worker.celery_app import create_app

logger = logging.getLogger("measure_fairness")

DATABASE = "maskwatch_fairness"
SAMPLE_FPS = 2.0
WORKER_ENV = {
    "MASKWATCH_TORCH_THREADS": "1",
    "MASKWATCH_SEGMENT_SECONDS": "2",
    "MASKWATCH_SEGMENT_BATCH_FRAMES": "4",
}


def queue_job(
    factory: sessionmaker[Session], celery: Celery, clip: Path, site: str
) -> str:
    job_id = submit_job(factory, celery, clip, sample_fps=SAMPLE_FPS, site=site)
    return job_id


def run_mode(
    fair: bool, clip: Path, big_jobs: int, workers: int, work: Path
) -> dict[str, Any]:
    database = fresh_database(DATABASE)
    server = RedisServer(port=free_port(), workdir=work / f"redis-{fair}")
    server.start()
    engine = make_engine(database)
    factory = make_session_factory(engine)
    celery = create_app(Settings(broker_url=server.url, database_url=database))
    fleet = WorkerFleet(
        env={
            "MASKWATCH_DATABASE_URL": database,
            "MASKWATCH_BROKER_URL": server.url,
            "MASKWATCH_FAIR_SHARE": str(fair).lower(),
            **WORKER_ENV,
        },
        log_dir=work / f"logs-{fair}",
    )
    fleet.log_dir.mkdir(parents=True, exist_ok=True)
    try:
        fleet.start_ready(*(f"w{index}" for index in range(workers)))
        big = [queue_job(factory, celery, clip, "big") for _ in range(big_jobs)]
        wait_for(
            lambda: all(get_job(factory, j).status is JobStatus.RUNNING for j in big),
            120,
            "the big site's jobs to be planned",
            interval_s=0.1,
        )
        started = time.monotonic()
        small = queue_job(factory, celery, clip, "small")
        small_job = wait_finished(factory, small, timeout_s=1800)
        small_wait_s = time.monotonic() - started
        big_finished = [wait_finished(factory, j, timeout_s=1800) for j in big]
        all_done_s = time.monotonic() - started
        big_segments = [s for j in big for s in segment_rows(factory, j)]
        small_end = small_job.finished_at
        assert small_end is not None
        after_small = sum(1 for s in big_segments if s.updated_at > small_end)
        statuses = {job.status.value for job in [small_job, *big_finished]}
        return {
            "fair_share": fair,
            "big_site_segments": len(big_segments),
            "small_site_segments": len(segment_rows(factory, small)),
            "small_job_wait_s": round(small_wait_s, 1),
            "everything_done_s": round(all_done_s, 1),
            "big_segments_finished_after_the_small_job": after_small,
            "statuses": sorted(statuses),
        }
    finally:
        fleet.stop_all()
        engine.dispose()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--big-jobs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="fairness-") as folder:
        work = Path(folder)
        clip = make_composition_video(work / "twelve.mp4", [(1, 1), (2, 0), (0, 2)] * 2)
        results = [
            run_mode(fair, clip, args.big_jobs, args.workers, work) for fair in (True, False)
        ]
    fair, fifo = results
    ratio = fair["small_job_wait_s"] / fifo["small_job_wait_s"]
    if args.json:
        print(json.dumps({"runs": results, "small_wait_ratio_fair_to_fifo": round(ratio, 3)}))
        return
    for run in results:
        print(json.dumps(run))
    print(f"small site's wait, fair / FIFO: {ratio:.2f}")


if __name__ == "__main__":
    main()
