"""One page of a query's rows and the count of all of them: what every list endpoint shows."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session

_Row = TypeVar("_Row")


def page_of(
    session: Session,
    rows: Select[_Row],
    count: Select[Any],
    *,
    offset: int,
    limit: int,
    max_size: int,
) -> tuple[list[_Row], int]:
    """``limit`` of ``rows`` (already ordered) after skipping ``offset``, and ``count``'s value.

    Raises:
        ValueError: on a negative offset or a limit outside 1 to ``max_size``.
    """
    if offset < 0 or not 1 <= limit <= max_size:
        raise ValueError(f"need offset >= 0 and 1 <= limit <= {max_size}")
    total = session.scalar(count)
    return list(session.scalars(rows.offset(offset).limit(limit)).all()), total or 0
