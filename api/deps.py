"""What routes depend on: the app's services, the request's database session, the models."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from maskwatch.settings import Settings

if TYPE_CHECKING:
    from storage.models import Job
    from worker.pipeline.analyze import Models

logger = logging.getLogger(__name__)

Enqueue = Callable[[str], None]
"""Hands a committed job's id to the workers."""

CancelJob = Callable[[Session, "Job"], None]
"""Marks a queued or running job and its unfinished work cancelled; the caller commits."""


@dataclass
class Services:
    """What the app was built with; kept on ``app.state.services``."""

    settings: Settings
    session_factory: sessionmaker[Session]
    enqueue: Enqueue
    cancel: CancelJob
    models: LazyModels


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def get_session(request: Request) -> Iterator[Session]:
    """One session per request: the route commits once; anything unfinished is rolled back."""
    session = services(request).session_factory()
    try:
        yield session
    finally:
        session.close()  # rolls back what was not committed


SessionDep = Annotated[Session, Depends(get_session)]


class LazyModels:
    """Detector and classifier for POST /v1/classify, loaded on first use, once per process.

    Loading takes seconds and hundreds of MB, so an API that never classifies never pays
    for it. Loading runs under a lock; so does inference, since one CPU-bound request at a
    time is as fast as several and the torch modules are not documented as thread-safe.
    """

    def __init__(self, loader: Callable[[], Models]) -> None:
        self._loader = loader
        self._models: Models | None = None
        self._load_lock = threading.Lock()
        self.inference_lock = threading.Lock()

    def get(self) -> Models:
        if self._models is None:
            with self._load_lock:
                if self._models is None:
                    logger.info("loading the detector and classifier for /v1/classify")
                    self._models = self._loader()
        return self._models
