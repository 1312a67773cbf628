"""Wiring shared by the CLI commands: settings to database sessions and models."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from maskwatch.core.analysis import AnalysisSettings
from maskwatch.settings import Settings
from storage.db import is_up_to_date, make_engine, make_session_factory, upgrade

if TYPE_CHECKING:
    from worker.pipeline.analyze import Models

logger = logging.getLogger(__name__)


class SetupError(RuntimeError):
    """The installation or configuration is not ready (shown to the user as is)."""


def open_database(url: str, auto_upgrade: bool) -> sessionmaker[Session]:
    """A session factory on ``url``; the embedded SQLite file is migrated on first use."""
    if not is_up_to_date(url):
        if not auto_upgrade:
            raise SetupError("the database schema is not up to date: run `maskwatch db upgrade`")
        logger.info("applying migrations to %s", url)
        upgrade(url)
    return make_session_factory(make_engine(url))


def analysis_settings(settings: Settings, **overrides: object) -> AnalysisSettings:
    """``settings.analysis(**overrides)``, for the surfaces that name it so."""
    return settings.analysis(**overrides)


def models_for(settings: Settings, analysis: AnalysisSettings) -> Models:
    from worker.pipeline.analyze import load_models  # torch: only when models are needed

    if not settings.checkpoint.is_file():
        raise SetupError(f"classifier checkpoint missing: {settings.checkpoint}")
    return load_models(analysis, settings.checkpoint, settings.device, settings.torch_threads)


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files named directly, and the media files of named folders (sorted, not recursive).

    A folder's other regular files are kept too, so that each gets its own error in the
    report rather than vanishing silently; hidden files are skipped.
    """
    inputs: list[Path] = []
    for path in paths:
        if path.is_dir():
            inputs.extend(
                sorted(
                    p.resolve()
                    for p in path.iterdir()
                    if p.is_file() and not p.name.startswith(".")
                )
            )
        else:
            inputs.append(path.resolve() if path.exists() else path.absolute())
    return inputs
