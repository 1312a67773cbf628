"""Faults under load: many jobs through the API to two workers while things break.

Usage: python scripts/fault_load.py [--jobs 100] [--json]

While ``--jobs`` uploads of one tiny generated clip go through the HTTP API to two
`maskwatch worker` processes (one pool process, one torch thread each), the script

1. SIGKILLs the pool process of a worker while it runs a segment,
2. restarts Redis once (``shutdown nosave``: every queued message is lost),
3. makes PostgreSQL refuse connections for 10 s,

then checks that every accepted job succeeded with exactly the counts of the same clip
analysed alone (in this process, on SQLite), that no frame was stored twice and that every
segment succeeded. Nothing shared is touched: Redis is a private ``redis-server`` on a free
port, and PostgreSQL is reached through a TCP proxy run by this script, which it closes
(existing connections cut, new ones refused) for the outage; the database is
``maskwatch_faults``, recreated. Needs the local PostgreSQL, ``redis-server`` and ffmpeg.
Exit status 0 when every check passed. Figures go in docs/deployment.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _repo  # noqa: F401  (puts the repository root on sys.path)
import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from ml.footage import make_composition_video
from scripts.cluster_support import ADMIN_URL, fresh_database
from storage.db import make_engine, make_session_factory, upgrade
from storage.models import (
    FrameStat,
    Job,
    JobSegment,
    JobStatus,
    SegmentStatus,
)
from storage.repositories import api_keys as key_repo
from storage.repositories import jobs as job_repo
from storage.repositories import reports as report_repo
from tests.distributed.dist_support import (
    RedisServer,
    WorkerFleet,
    create_job,
)
from tests.polling import wait_for
from tests.processes import (
    Process,
    free_port,
    start,
    wait_for_api,
    with_repo_path,
)
from worker.jobs import run_job
from worker.pipeline.analyze import AnalysisSettings, load_models

logger = logging.getLogger("fault_load")

DATABASE = "maskwatch_faults"
SAMPLE_FPS = 1.0
OUTAGE_S = 10.0
SUMMARY_FIELDS = ("frames", "frames_with_faces", "faces", "masked", "unmasked", "incorrect")
# Short segments and sweeps, so that a 2 s clip has two segments and lost work is found fast.
SERVICE_ENV = {
    "MASKWATCH_SAMPLE_FPS": str(SAMPLE_FPS),
    "MASKWATCH_TORCH_THREADS": "1",
    "MASKWATCH_SEGMENT_SECONDS": "1",
    "MASKWATCH_SEGMENT_BATCH_FRAMES": "1",
    "MASKWATCH_RECOVERY_INTERVAL_S": "2",
    "MASKWATCH_STALE_AFTER_S": "30",
}


# ----------------------------------------------------------------- the PostgreSQL proxy


class OutageProxy:
    """A TCP proxy to PostgreSQL that can go down: ``down()`` cuts every connection and
    stops listening (connections are refused), ``up()`` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        self.writers |= {client_w, server_w}
        try:
            await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))
        finally:
            self.writers -= {client_w, server_w}

    async def _up(self) -> None:
        self.server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def _down(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for writer in list(self.writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()  # a reset, as a crashed server would leave
        self.writers.clear()

    def up(self) -> None:
        self._call(self._up())

    def down(self) -> None:
        self._call(self._down())

    def close(self) -> None:
        self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


# ----------------------------------------------------------------------------- set-up


def reference_counts(clip: Path, work: Path) -> dict[str, int]:
    """The clip analysed alone: in this process, on SQLite, one torch thread."""
    from maskwatch.settings import Settings

    url = f"sqlite:///{work / 'reference.sqlite3'}"
    upgrade(url)
    analysis = AnalysisSettings(sample_fps=SAMPLE_FPS)
    engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        job_id = create_job(factory, clip, sample_fps=SAMPLE_FPS, site="reference", camera="local")
        models = load_models(analysis, Settings().checkpoint, "cpu", threads=1)
        run_job(factory, job_id, models)
        with factory() as session:
            job = job_repo.get_job(session, job_id)
            if job is None or job.status is not JobStatus.SUCCEEDED:
                raise SystemExit(f"the reference analysis failed: {job and job.error}")
            summary = report_repo.job_summary(session, job_id)
        return {name: getattr(summary, name) for name in SUMMARY_FIELDS}
    finally:
        engine.dispose()


@dataclass
class Api:
    process: Process
    url: str

    def stop(self) -> None:
        self.process.stop()


def start_api(env: dict[str, str], work: Path) -> Api:
    port = free_port()
    env = with_repo_path({**os.environ, **env})
    process = start("api", ["serve", "--port", str(port)], env, work)
    api = Api(process, f"http://127.0.0.1:{port}")
    wait_for_api(api.process, api.url, 60)
    return api


# ------------------------------------------------------------------------------ run


@dataclass
class Submissions:
    accepted: list[str] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)  # answer -> times, retried
    lock: threading.Lock = field(default_factory=threading.Lock)


def submit_until_accepted(api: Api, key: str, clip: Path, index: int, seen: Submissions) -> None:
    """POST the clip; on a refusal (5xx, a cut connection) retry, as a client would."""
    content = clip.read_bytes()
    while True:
        try:
            response = httpx.post(
                f"{api.url}/v1/jobs",
                headers={"Authorization": f"Bearer {key}"},
                data={"camera": f"cam-{index % 4}", "site": f"site-{index % 2}"},
                files={"file": (f"clip-{index}.mp4", content, "video/mp4")},
                timeout=60,
            )
        except httpx.HTTPError as exc:
            answer = type(exc).__name__
        else:
            if response.status_code == 201:
                with seen.lock:
                    seen.accepted.append(response.json()["id"])
                return
            answer = f"{response.status_code} {response.json().get('detail', '')[:60]}"
        with seen.lock:
            seen.refused[answer] += 1
        time.sleep(1.0)


def busy_pool_process(direct_url: str, fleet: WorkerFleet) -> tuple[int, str]:
    """A pool process of ours now running a segment (from the segments' ``worker`` column),
    and which segment; the first pool process if none is seen running within 10 s."""
    pool = fleet.pool_pids()
    engine = make_engine(direct_url)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with make_session_factory(engine)() as session:
                running = session.execute(
                    select(JobSegment.worker, JobSegment.job_id, JobSegment.segment_index).where(
                        JobSegment.status == SegmentStatus.RUNNING
                    )
                ).all()
            for worker, job_id, index in running:
                pid = int(str(worker).rsplit(":", 1)[-1])
                if pid in pool:
                    return pid, f"segment {index} of job {job_id}"
            time.sleep(0.05)
    finally:
        engine.dispose()
    return sorted(pool)[0], "no segment seen running"


def inject_faults(
    direct_url: str,
    fleet: WorkerFleet,
    redis_server: RedisServer,
    proxy: OutageProxy,
    events: list[str],
) -> None:
    """The three faults, one after the other, while jobs are being analysed."""
    start = time.monotonic()

    def note(what: str) -> None:
        events.append(f"{time.monotonic() - start:6.1f} s  {what}")
        logger.info(what)

    time.sleep(8)
    pid, segment = busy_pool_process(direct_url, fleet)
    os.kill(pid, signal.SIGKILL)
    note(f"SIGKILL pool process {pid} while it ran {segment}")
    time.sleep(8)
    redis_server.restart()
    note("Redis restarted (shutdown nosave: queued messages lost)")
    time.sleep(8)
    proxy.down()
    note(f"PostgreSQL refuses connections (proxy down) for {OUTAGE_S:g} s")
    time.sleep(OUTAGE_S)
    proxy.up()
    note("PostgreSQL reachable again")


def verify(direct_url: str, job_ids: list[str], reference: dict[str, int]) -> dict[str, Any]:
    engine = make_engine(direct_url)
    try:
        factory = make_session_factory(engine)
        problems: list[str] = []
        attempts: Counter[int] = Counter()
        with factory() as session:
            for job_id in job_ids:
                job = job_repo.get_job(session, job_id)
                if job is None or job.status is not JobStatus.SUCCEEDED:
                    problems.append(f"{job_id}: {job and job.status.value}: {job and job.error}")
                    continue
                summary = report_repo.job_summary(session, job_id)
                counts = {name: getattr(summary, name) for name in SUMMARY_FIELDS}
                rows = session.scalar(
                    select(func.count(FrameStat.id)).where(FrameStat.job_id == job_id)
                )
                distinct = session.scalar(
                    select(func.count(func.distinct(FrameStat.frame_index))).where(
                        FrameStat.job_id == job_id
                    )
                )
                segments = session.scalars(
                    select(JobSegment).where(JobSegment.job_id == job_id)
                ).all()
                attempts.update(s.attempts for s in segments)
                if counts != reference:
                    problems.append(f"{job_id}: counts {counts} != {reference}")
                if not rows == distinct == job.frames_done == job.frames_total:
                    problems.append(
                        f"{job_id}: rows {rows}, distinct {distinct}, done {job.frames_done}, "
                        f"total {job.frames_total}"
                    )
                if any(s.status.value != "succeeded" for s in segments):
                    problems.append(f"{job_id}: segments {[s.status.value for s in segments]}")
            every_job = Counter(
                status.value for status in session.scalars(select(Job.status))
            )
        return {
            "problems": problems,
            "segment_attempts": dict(sorted(attempts.items())),
            "job_rows_by_status": dict(every_job),
        }
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--submitters", type=int, default=2, help="concurrent uploads")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for all jobs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    with tempfile.TemporaryDirectory(prefix="fault-load-") as folder:
        work = Path(folder)
        clip = make_composition_video(
            work / "tiny.mp4", [(1, 1), (2, 0)], seconds_per_segment=1
        )  # 2 s at 10 fps; analysed at 1 frame a second: 2 frames, 2 segments
        reference = reference_counts(clip, work)
        logger.info("reference (the clip alone): %s", reference)

        direct_url = fresh_database(DATABASE)
        proxy = OutageProxy(make_url(ADMIN_URL).port or 5432)
        proxy.up()
        proxied_url = (
            make_url(direct_url).set(port=proxy.port).render_as_string(hide_password=False)
        )
        engine = make_engine(direct_url)
        with make_session_factory(engine)() as session:
            _, key = key_repo.create_api_key(session, "fault-load", is_admin=True)
            session.commit()
        engine.dispose()

        redis_server = RedisServer(port=free_port(), workdir=work / "redis")
        redis_server.start()
        env = {
            **SERVICE_ENV,
            "MASKWATCH_DATABASE_URL": proxied_url,
            "MASKWATCH_BROKER_URL": redis_server.url,
            "MASKWATCH_UPLOAD_DIR": str(work / "uploads"),
        }
        fleet = WorkerFleet(env=env, log_dir=work / "logs")
        fleet.log_dir.mkdir()
        api: Api | None = None
        try:
            fleet.start_ready("w1", "w2")
            api = start_api(env, work)

            seen = Submissions()
            events: list[str] = []
            started = time.monotonic()
            faults = threading.Thread(
                target=inject_faults, args=(direct_url, fleet, redis_server, proxy, events)
            )
            faults.start()
            with ThreadPoolExecutor(args.submitters) as pool:
                list(
                    pool.map(
                        lambda i: submit_until_accepted(api, key, clip, i, seen),
                        range(args.jobs),
                    )
                )
            submitted_s = time.monotonic() - started
            faults.join()

            def all_finished() -> bool:
                engine = make_engine(direct_url)
                try:
                    with make_session_factory(engine)() as session:
                        return all(
                            (job := job_repo.get_job(session, job_id)) is not None
                            and job.status in job_repo.FINISHED
                            for job_id in seen.accepted
                        )
                finally:
                    engine.dispose()

            wait_for(all_finished, args.timeout, "every job to finish", interval_s=2)
            elapsed_s = time.monotonic() - started
            checked = verify(direct_url, seen.accepted, reference)
            logs = "\n".join(w.log() for w in fleet.workers)
        finally:
            if api is not None:
                api.stop()
            fleet.stop_all()
            redis_server.stop()
            proxy.close()

    result = {
        "jobs_accepted": len(seen.accepted),
        "submissions_refused_and_retried": dict(seen.refused),
        "reference_counts": reference,
        "faults": events,
        "all_submitted_s": round(submitted_s, 1),
        "all_finished_s": round(elapsed_s, 1),
        "segment_attempts": checked["segment_attempts"],
        "job_rows_by_status": checked["job_rows_by_status"],
        "broker_loss_seen": "the broker lost its messages" in logs,
        "problems": checked["problems"],
        "database": DATABASE,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    raise SystemExit(1 if checked["problems"] or len(seen.accepted) != args.jobs else 0)


if __name__ == "__main__":
    main()
