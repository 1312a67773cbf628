"""Fixtures for the pipeline's job tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from maskwatch.settings import DEFAULT_CHECKPOINT
from storage.db import make_engine, make_session_factory, upgrade
from worker.pipeline.analyze import AnalysisSettings, Models, load_models


@pytest.fixture
def factory(tmp_path: Path) -> sessionmaker[Session]:
    """Sessions on a migrated SQLite database of the test's own."""
    url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    upgrade(url)
    return make_session_factory(make_engine(url))


@pytest.fixture(scope="module")
def models() -> Models:
    """The shipped models on the CPU, loaded once per test module."""
    return load_models(AnalysisSettings(), DEFAULT_CHECKPOINT, "cpu", threads=1)
