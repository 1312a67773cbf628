"""What each worker process keeps between tasks, and the Celery signals and start-up step that
build it. Only the workers import this (through worker.tasks); senders never register it."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celery import bootsteps, signals
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from maskwatch.settings import Settings, get_settings
from worker.celery_app import app

if TYPE_CHECKING:
    from worker.pipeline.analyze import AnalysisSettings, Models
    from worker.pipeline.classify import MaskClassifier
    from worker.pipeline.detect import DetectorConfig, FaceDetector

logger = logging.getLogger(__name__)

MAX_DETECTORS_PER_PROCESS = 4  # MTCNNs kept for jobs with non-default detector settings


@dataclass
class WorkerProcess:
    """What one pool process keeps between tasks: the database and the models.

    Made in each pool process after the fork (``worker_process_init``), never in the
    parent: MTCNN built before a fork deadlocks the child, CUDA does not survive a fork, and
    a pooled connection must never be shared by two processes.
    """

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    classifier: MaskClassifier
    device: Any  # torch.device; Any keeps torch out of this module's imports
    default_config: DetectorConfig
    detectors: dict[DetectorConfig, FaceDetector] = field(default_factory=dict)
    name: str = ""

    @classmethod
    def start(cls, settings: Settings, concurrency: int) -> WorkerProcess:
        """Open the database and load the models in this (already forked) process."""
        from billiard.process import current_process

        from storage.db import make_engine, make_session_factory
        from worker.pipeline.analyze import load_models
        from worker.pipeline.device import device_for_process, visible_gpu_count

        threads = settings.torch_threads or (1 if concurrency > 1 else 0)
        index = getattr(current_process(), "index", None) or 0
        device = device_for_process(settings.device, visible_gpu_count(), index)
        if not settings.checkpoint.is_file():
            raise RuntimeError(f"classifier checkpoint missing: {settings.checkpoint}")
        defaults = settings.analysis()
        models = load_models(defaults, settings.checkpoint, device, threads)
        engine = make_engine(settings.database_url)
        config = defaults.detector_config()
        return cls(
            settings=settings,
            engine=engine,
            session_factory=make_session_factory(engine),
            classifier=models.classifier,
            device=models.device,
            default_config=config,
            detectors={config: models.detector},
            name=f"{socket.gethostname()}:{os.getpid()}",
        )

    def models_for(self, analysis: AnalysisSettings) -> Models:
        """The models for a job's settings; a detector for new settings is built once."""
        from worker.pipeline.analyze import Models
        from worker.pipeline.detect import build_detector

        config = analysis.detector_config()
        detector = self.detectors.get(config)
        if detector is None:
            if len(self.detectors) >= MAX_DETECTORS_PER_PROCESS:
                for key in [k for k in self.detectors if k != self.default_config]:
                    del self.detectors[key]
            detector = self.detectors[config] = build_detector(config, self.device)
        return Models(detector=detector, classifier=self.classifier, device=self.device)

    def close(self) -> None:
        self.engine.dispose()


_process: WorkerProcess | None = None
_process_lock = threading.Lock()


def worker_process() -> WorkerProcess:
    """This process's resources, made on first use outside a prefork pool (tests, solo)."""
    global _process
    with _process_lock:
        if _process is None:
            _process = WorkerProcess.start(get_settings(), _concurrency())
        return _process


def _concurrency() -> int:
    return int(app.conf.worker_concurrency or 1)


@signals.worker_process_init.connect
def _start_worker_process(**_: Any) -> None:
    global _process
    _process = WorkerProcess.start(get_settings(), _concurrency())
    logger.info("worker process %s ready", _process.name)


@signals.worker_process_shutdown.connect
def _stop_worker_process(**_: Any) -> None:
    from worker.metrics import process_exited

    if _process is not None:
        _process.close()
    process_exited(os.getpid())


class PeriodicStep(bootsteps.StartStopStep):
    """Runs ``work`` in the worker's main process, soon after start and then every
    ``interval_s()`` seconds.

    Runs on the worker's event-loop timer, not in a thread: the main process forks
    replacement pool processes, and a fork must not happen while a thread holds a lock.
    """

    requires = {"celery.worker.components:Timer"}
    what = "periodic work"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._timers: list[Any] = []

    def interval_s(self) -> float:
        raise NotImplementedError

    def work(self) -> None:
        raise NotImplementedError

    def start(self, parent: Any) -> None:
        self._timers = [
            parent.timer.call_after(1.0, self._run),
            parent.timer.call_repeatedly(self.interval_s(), self._run),
        ]

    def stop(self, parent: Any) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers = []

    def _run(self) -> None:
        try:
            self.work()
        except Exception:  # the broker or the database is down: try again next time
            logger.warning("%s failed; will retry", self.what, exc_info=True)


class RecoveryStep(PeriodicStep):
    """Re-sends work the broker lost (see ``worker.dispatch.recover``)."""

    what = "looking for lost work"

    def interval_s(self) -> float:
        return get_settings().recovery_interval_s

    def work(self) -> None:
        from worker.dispatch import recover

        recover(get_settings())


class RetentionStep(PeriodicStep):
    """Deletes old uploads (``worker.retention.apply_retention``; one worker per interval)."""

    what = "applying upload retention"

    def interval_s(self) -> float:
        return get_settings().retention_interval_s

    def work(self) -> None:
        from worker.retention import apply_retention

        apply_retention(get_settings())


app.steps["worker"].add(RecoveryStep)
app.steps["worker"].add(RetentionStep)
