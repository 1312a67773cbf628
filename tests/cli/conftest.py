"""Fixtures for the CLI tests: generated footage with known faces and a throwaway database."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml.footage import make_composition_video
from storage.db import make_engine, make_session_factory

# (masked, unmasked) faces on screen, two seconds each.
SEGMENTS = [(2, 1), (0, 2), (1, 1), (3, 0)]


@pytest.fixture(scope="session")
def composition_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("videos") / "composition.mp4"
    return make_composition_video(out, SEGMENTS, seconds_per_segment=2, fps=10)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'maskwatch.sqlite3'}"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def session_for(db_url: str):  # type: ignore[no-untyped-def]
    def factory():  # type: ignore[no-untyped-def]
        return make_session_factory(make_engine(db_url))()

    return factory
