"""Prometheus metrics of the analysis workers, shared by a worker's pool processes.

Celery's prefork pool runs tasks in several processes, so the metrics use prometheus-client's
multiprocess mode: each process writes its values to files in ``PROMETHEUS_MULTIPROC_DIR``
and the worker's exporter (``worker.metrics_exporter``, started by ``maskwatch worker``)
adds them up when scraped. The directory must be set before prometheus_client is first
imported (``worker.metrics_files``); without it these are plain in-process metrics, which
is what the tests that call task functions directly get.
"""

from __future__ import annotations

import logging
import os
from enum import StrEnum

from prometheus_client import Counter, Gauge, Histogram

from worker.metrics_files import MULTIPROC_ENV

logger = logging.getLogger(__name__)

SEGMENT_BUCKETS_S = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)


class FailureKind(StrEnum):
    """Why a worker gave up on a job or a segment."""

    INPUT = "input"  # the footage cannot be analysed: the user's file, no retry
    TIME_LIMIT = "time_limit"  # a task ran past its time limit
    TRANSIENT = "transient"  # database or broker still down after the retries
    INTERNAL = "internal"  # any other exception: a bug or a broken deployment


JOBS_FINISHED = Counter(
    "maskwatch_jobs_finished",
    "Jobs the workers finished, by final status (succeeded or failed).",
    ["status"],
)
FRAMES_ANALYSED = Counter(
    "maskwatch_frames_analysed", "Sampled frames analysed and stored by the workers."
)
FACES_FOUND = Counter("maskwatch_faces_found", "Faces found in the analysed frames.")
SEGMENT_DURATION = Histogram(
    "maskwatch_segment_duration_seconds",
    "Wall time of one segment's analysis (decode, detect, classify, store).",
    buckets=SEGMENT_BUCKETS_S,
)
FRAMES_PER_SECOND = Gauge(
    "maskwatch_worker_frames_per_second",
    "Frames per wall second of the last segment each live pool process analysed; "
    "sum over pid for a worker's throughput.",
    multiprocess_mode="liveall",
)
FAILURES = Counter(
    "maskwatch_failures",
    "Jobs or segments the workers gave up on, by kind (input, time_limit, transient, "
    "internal).",
    ["kind"],
)


def segment_analysed(frames: int, faces: int, seconds: float) -> None:
    """Count a finished segment: its frames, faces, duration and frame rate."""
    FRAMES_ANALYSED.inc(frames)
    FACES_FOUND.inc(faces)
    SEGMENT_DURATION.observe(seconds)
    if seconds > 0:
        FRAMES_PER_SECOND.set(frames / seconds)


def job_finished(status: str) -> None:
    JOBS_FINISHED.labels(status).inc()


def failure(kind: FailureKind) -> None:
    FAILURES.labels(kind.value).inc()


def process_exited(pid: int) -> None:
    """Drop a pool process's live gauges (its counters stay counted)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
