"""Wiring shared by the CLI commands: settings to database sessions and models."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from maskwatch.core.analysis import AnalysisSettings
from maskwatch.settings import Settings
from storage.db import is_up_to_date, make_engine, make_session_factory, upgrade

if TYPE_CHECKING:
    from worker.pipeline.analyze import Models

logger = logging.getLogger(__name__)


class SetupError(RuntimeError):
    """The installation or configuration is not ready (shown to the user as is)."""


SUPPORTED_DATABASES = ("sqlite", "postgresql")


@contextmanager
def database_access(url: str) -> Iterator[None]:
    """Turn a database URL that is not supported, or a database that cannot be reached or
    does not exist, into a one-line SetupError (the password is never shown)."""
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise SetupError(
            f"not a database URL: {url[:80]!r} (e.g. sqlite:///var/maskwatch.sqlite3 or "
            "postgresql+psycopg://USER@HOST:5432/DB)"
        ) from None
    if backend not in SUPPORTED_DATABASES:
        raise SetupError(
            f"unsupported database {backend!r}: MaskWatch stores its data in "
            "SQLite (sqlite:///PATH) or PostgreSQL (postgresql+psycopg://USER@HOST:5432/DB)"
        )
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        yield
    except (SQLAlchemyError, ImportError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise SetupError(
            f"cannot use the database {shown}: {reason[0] if reason else type(exc).__name__}"
        ) from exc


def open_database(url: str, auto_upgrade: bool) -> sessionmaker[Session]:
    """A session factory on ``url``; the embedded SQLite file is migrated on first use.

    Raises:
        SetupError: the URL is not SQLite or PostgreSQL, or the database cannot be used.
    """
    with database_access(url):
        return _open_database(url, auto_upgrade)


def _open_database(url: str, auto_upgrade: bool) -> sessionmaker[Session]:
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
