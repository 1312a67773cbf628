"""Fixtures shared by the test folders that use a database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from storage.db import make_engine


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the folder's ``database_url`` (each folder's conftest defines that)."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()
