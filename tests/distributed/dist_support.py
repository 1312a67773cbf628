"""Helpers for the distributed tests: worker and Redis processes we own, jobs, polling."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from maskwatch.core.counts import LABEL_COUNTS
from maskwatch.settings import Settings
from storage.models import FaceDetection, FrameStat, Job, JobSegment, JobStatus, SegmentStatus
from storage.repositories import jobs as job_repo
from storage.repositories import reports as report_repo
from tests.db_support import add_video_job
from tests.polling import wait_for
from tests.processes import popen_maskwatch, with_repo_path
from worker.dispatch import enqueue_job
from worker.jobs import run_job
from worker.pipeline.analyze import AnalysisSettings, load_models
from worker.pipeline.ffmpeg_process import stop_process

FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
WORKER_START_TIMEOUT_S = 90.0
WORKER_STOP_TIMEOUT_S = 10.0

# Small numbers keep the suite to a few minutes on two cores, with several segments per job
# and several batches per segment.
SAMPLE_FPS = 2.0
SEGMENT_SECONDS = 4
BATCH_FRAMES = 4
WORKER_ENV = {
    "MASKWATCH_TORCH_THREADS": "1",
    "MASKWATCH_SEGMENT_SECONDS": str(SEGMENT_SECONDS),
    "MASKWATCH_SEGMENT_BATCH_FRAMES": str(BATCH_FRAMES),
    # No metrics exporter: several workers share this machine (one port each otherwise), and
    # the crash tests take every Python child of a worker for a pool process.
    "MASKWATCH_WORKER_METRICS_PORT": "0",
}
# (masked, unmasked) faces per 2-second stretch of the generated clips.
SCENES_16S = [(1, 1), (2, 0), (0, 2), (1, 2), (2, 1), (0, 1), (1, 0), (2, 2)]
SCENES_20S = [*SCENES_16S, (1, 1), (0, 3)]



def child_pids(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (Linux /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # Fields after the parenthesised command name: state, ppid, ...
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                children.append(int(entry.name))
    return children


@dataclass
class WorkerHandle:
    """One `maskwatch worker` process started by a test, with its log file."""

    name: str
    concurrency: int
    log_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def pool_pids(self) -> list[int]:
        """The worker's pool processes (the children that run tasks)."""
        return [p for p in child_pids(self.pid) if _is_python(p)]

    def wait_ready(self, timeout_s: float = WORKER_START_TIMEOUT_S) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"worker {self.name} exited ({self.proc.returncode}):\n{self.log()[-3000:]}"
                )
            text = self.log()
            models_loaded = len(re.findall(r"worker process \S+ ready", text))
            return (
                f"{self.name}@" in text
                and " ready." in text
                and (models_loaded >= self.concurrency)
            )

        wait_for(ready, timeout_s, f"worker {self.name} to be ready", interval_s=0.25)

    def request_stop(self) -> None:
        """Ask for a cold shutdown (SIGQUIT): running tasks are abandoned, not awaited."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGQUIT)

    def stop(self, deadline: float | None = None) -> None:
        """Stop the worker by ``deadline`` (monotonic), then SIGKILL its group, and reap it."""
        self.request_stop()
        if deadline is None:
            deadline = time.monotonic() + WORKER_STOP_TIMEOUT_S
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        # The worker leads its own session (start_new_session): its group is its pool and
        # their ffmpeg children, all started by this test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=WORKER_STOP_TIMEOUT_S)


def _is_python(pid: int) -> bool:
    try:
        return "python" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


@dataclass
class WorkerFleet:
    """Starts `maskwatch worker` processes with a test configuration; stops them all."""

    env: Mapping[str, str]
    log_dir: Path
    workers: list[WorkerHandle] = field(default_factory=list)

    def start(
        self,
        name: str,
        concurrency: int = 1,
        extra_env: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> WorkerHandle:
        log_path = self.log_dir / f"{name}-{len(self.workers)}.log"
        env = with_repo_path({**os.environ, **self.env, **(extra_env or {})})
        args = ["worker", "--concurrency", str(concurrency), "--hostname", f"{name}@%h"]
        proc = popen_maskwatch([*args, "--loglevel", "INFO"], env, log_path)
        handle = WorkerHandle(name, concurrency, log_path, proc)
        self.workers.append(handle)
        if wait:
            handle.wait_ready()
        return handle

    def start_ready(self, *names: str) -> None:
        """Start one worker per name at once, then wait until every one is ready."""
        for name in names:
            self.start(name, wait=False)
        for worker in self.workers:
            worker.wait_ready()

    def pool_pids(self) -> set[int]:
        return {pid for worker in self.workers for pid in worker.pool_pids()}

    def logs(self, tail_chars: int = 6000) -> str:
        return "\n".join(
            f"----- {w.name} (pid {w.pid}, {w.log_path}) -----\n{w.log()[-tail_chars:]}"
            for w in self.workers
        )

    def log_sizes(self) -> dict[Path, int]:
        """How much each worker has logged so far (a mark for ``logs_since``)."""
        return {w.log_path: len(w.log()) for w in self.workers}

    def logs_since(self, sizes: Mapping[Path, int]) -> str:
        """What the workers logged after ``sizes`` was taken: on the session's shared fleet,
        the rest belongs to earlier tests (a decoder test's retries, for one)."""
        return "\n".join(w.log()[sizes.get(w.log_path, 0) :] for w in self.workers)

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.request_stop()
        deadline = time.monotonic() + WORKER_STOP_TIMEOUT_S
        for worker in self.workers:
            worker.stop(deadline)
        self.workers.clear()


@dataclass
class RedisServer:
    """A private redis-server configured like the shared one (no persistence at all)."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for(self._pong, 15, f"redis-server on port {self.port}")

    def _pong(self) -> bool:
        result = subprocess.run(
            ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True, timeout=5
        )
        return result.stdout.strip() == "PONG"

    def shutdown_nosave(self) -> None:
        """`redis-cli shutdown nosave`: the server exits and every key is gone."""
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "shutdown", "nosave"],
            capture_output=True,
            timeout=10,
        )
        if self.proc is not None:
            self.proc.wait(timeout=15)

    def restart(self) -> None:
        self.shutdown_nosave()
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace_s=10)


# ----------------------------------------------------------------------------- jobs


def create_job(
    session_factory: sessionmaker[Session],
    path: Path,
    *,
    sample_fps: float,
    site: str = "dist-test",
    camera: str = "cam",
) -> str:
    """A queued video job on ``path`` at ``site``/``camera`` (committed); returns its id."""
    with session_factory() as session:
        settings = AnalysisSettings(sample_fps=sample_fps).to_dict()
        job = add_video_job(session, path, settings=settings, site=site, camera=camera)
        session.commit()
        return job.id


def run_in_process(session_factory: sessionmaker[Session], path: Path, *, sample_fps: float) -> str:
    """The reference for the workers: ``path`` analysed whole in this process, as the
    embedded path runs it (one torch thread); the job's id."""
    job_id = create_job(session_factory, path, sample_fps=sample_fps)
    models = load_models(
        AnalysisSettings(sample_fps=sample_fps), Settings().checkpoint, "cpu", threads=1
    )
    run_job(session_factory, job_id, models)
    return job_id


@dataclass(frozen=True)
class Cluster:
    """Workers, the database they write to and a Celery client that sends them jobs."""

    fleet: WorkerFleet
    session_factory: sessionmaker[Session]
    celery: Celery

    def submit(self, path: Path, *, sample_fps: float, **where: str) -> str:
        """``submit_job`` to these workers (``where``: site, camera); the job's id."""
        return submit_job(self.session_factory, self.celery, path, sample_fps=sample_fps, **where)


def submit_job(
    session_factory: sessionmaker[Session],
    celery: Celery,
    path: Path,
    *,
    sample_fps: float,
    site: str = "dist-test",
    camera: str = "cam",
) -> str:
    """``create_job``, then send the job to the workers through ``celery``; its id."""
    job_id = create_job(session_factory, path, sample_fps=sample_fps, site=site, camera=camera)
    enqueue_job(job_id, celery=celery)
    return job_id


def get_job(session_factory: sessionmaker[Session], job_id: str) -> Job:
    with session_factory() as session:
        job = job_repo.get_job(session, job_id)
        assert job is not None
        return job


def wait_finished(
    session_factory: sessionmaker[Session], job_id: str, timeout_s: float = 90.0
) -> Job:
    def finished() -> Job | None:
        job = get_job(session_factory, job_id)
        return job if job.status in FINAL_STATUSES else None

    return wait_for(finished, timeout_s, f"job {job_id} to finish", interval_s=0.3)


def wait_for_stored_batch(
    session_factory: sessionmaker[Session],
    job_id: str,
    *,
    running: bool = True,
    interval_s: float = 0.05,
) -> None:
    """Wait until a segment of the job has stored a batch of frames (and, with ``running``,
    still runs): the job is busy in a worker, part of its work saved."""

    def stored() -> bool:
        return any(
            s.frames_done >= BATCH_FRAMES and (s.status is SegmentStatus.RUNNING or not running)
            for s in segment_rows(session_factory, job_id)
        )

    wait_for(stored, 60, "a segment to store its first batch", interval_s=interval_s)


def segments_mid_way(
    session_factory: sessionmaker[Session], job_id: str, *, before_frames: int | None = None
) -> list[JobSegment]:
    """The job's segments running in a worker process with a batch of frames stored (and,
    with ``before_frames``, fewer frames than that): work to disturb in its middle."""
    return [
        s
        for s in segment_rows(session_factory, job_id)
        if s.status is SegmentStatus.RUNNING
        and s.worker is not None
        and s.frames_done >= BATCH_FRAMES
        and (before_frames is None or s.frames_done < before_frames)
    ]


FrameRow = tuple[int, float, int, int, int, int]
FaceRow = tuple[int, float, float, float, float, str, float, float]
FRAME_COLUMNS = ("frame_index", "timestamp_s", *LABEL_COUNTS)
FACE_COLUMNS = ("frame_index", "x1", "y1", "x2", "y2", "label", "score", "face_prob")


def _job_rows(
    session_factory: sessionmaker[Session],
    table: type[FrameStat] | type[FaceDetection],
    job_id: str,
    columns: tuple[str, ...],
) -> list[Any]:
    """``columns`` of the job's rows in ``table``, as tuples in sorted order."""
    query = select(*(getattr(table, name) for name in columns)).where(table.job_id == job_id)
    with session_factory() as session:
        return sorted(tuple(row) for row in session.execute(query))


def frame_rows(session_factory: sessionmaker[Session], job_id: str) -> list[FrameRow]:
    """(frame_index, timestamp_s, faces, masked, unmasked, incorrect) in frame order."""
    return _job_rows(session_factory, FrameStat, job_id, FRAME_COLUMNS)


def face_rows(session_factory: sessionmaker[Session], job_id: str) -> list[FaceRow]:
    """Every stored face of the job, ordered by frame and position."""
    return _job_rows(session_factory, FaceDetection, job_id, FACE_COLUMNS)


def frames_stored_once(session_factory: sessionmaker[Session], job_id: str) -> list[FrameRow]:
    """``frame_rows`` of the job, checked first: no frame stored twice (a retried or
    redelivered segment must replace its frames, not add to them)."""
    rows = frame_rows(session_factory, job_id)
    indices = [row[0] for row in rows]
    assert len(indices) == len(set(indices)), "a frame was stored twice"
    return rows


def assert_same_as_an_undisturbed_run(
    cluster: Cluster, job_id: str, video: Path, *, sample_fps: float
) -> None:
    """The job's frames, faces and totals are those of a fresh run of ``video`` on the same
    workers: whatever disturbed the job (a killed process, a retry) left no trace in them."""
    reference_id = cluster.submit(video, sample_fps=sample_fps)
    reference = wait_finished(cluster.session_factory, reference_id, timeout_s=90)
    assert reference.status is JobStatus.SUCCEEDED
    for rows_of in (frame_rows, face_rows):
        assert rows_of(cluster.session_factory, job_id) == rows_of(
            cluster.session_factory, reference_id
        )
    with cluster.session_factory() as session:
        assert report_repo.job_summary(session, job_id) == report_repo.job_summary(
            session, reference_id
        )


def segment_pid(segment: JobSegment) -> int:
    """The pid of the pool process running ``segment`` (its worker is "<hostname>:<pid>")."""
    assert segment.worker is not None
    return int(segment.worker.rsplit(":", 1)[1])


def segment_rows(session_factory: sessionmaker[Session], job_id: str) -> list[JobSegment]:
    with session_factory() as session:
        return list(
            session.scalars(
                select(JobSegment)
                .where(JobSegment.job_id == job_id)
                .order_by(JobSegment.segment_index)
            )
        )


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
