"""Validation of query and form values shared by the routes: names and instants."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import HTTPException, status

MAX_NAME_CHARS = 100  # cameras.site and cameras.name are VARCHAR(100)
# No control characters: PostgreSQL refuses NUL in text, and names are shown in reports.
NAME_PATTERN = r"^[^\x00-\x1f\x7f]*$"
_CONTROL = frozenset(chr(c) for c in (*range(0x20), 0x7F))


def unprocessable(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)


def form_name(fields: dict[str, str], key: str) -> str | None:
    """A camera or site name from a form, stripped; 422 when empty, too long or unprintable."""
    value = fields.get(key)
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > MAX_NAME_CHARS or not _CONTROL.isdisjoint(value):
        raise unprocessable(f"{key} must be 1 to {MAX_NAME_CHARS} printable characters")
    return value


def parse_instant(value: str, what: str) -> datetime:
    """An ISO 8601 time with a UTC offset (``Z`` or ``+01:00``), in UTC; 422 otherwise."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise unprocessable(f"{what} is not an ISO 8601 date and time: {value[:40]!r}") from None
    if parsed.utcoffset() is None:
        raise unprocessable(f"{what} needs a UTC offset, e.g. 2024-03-01T09:00:00Z")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise unprocessable(f"{what} is out of range: {value[:40]!r}") from None
