"""Compliance reports aggregated in SQL: per job, worst frames, and time series."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    ColumnExpressionArgument,
    Float,
    Select,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from maskwatch.core.counts import FaceCounts
from maskwatch.core.records import FrameCounts
from maskwatch.core.reports import BUCKET_SIZES, BucketSize, ReportFilter
from storage.models import Camera, FrameStat, Job, JobStatus

# strftime formats truncating SQLite's stored "YYYY-MM-DD HH:MM:SS.ffffff" (UTC) values.
_SQLITE_BUCKET_FORMATS: dict[str, str] = {
    "minute": "%Y-%m-%d %H:%M:00",
    "hour": "%Y-%m-%d %H:00:00",
    "day": "%Y-%m-%d 00:00:00",
}


@dataclass(frozen=True, slots=True)
class Bucket:
    """Totals over the frames captured in [start, start + bucket size); start is UTC."""

    start: datetime
    counts: FaceCounts


def _total(column: ColumnExpressionArgument[int]) -> ColumnElement[int]:
    return func.coalesce(func.sum(column), 0)


def job_summary(session: Session, job_id: str) -> FaceCounts:
    """Totals of the job's frames; a job without frames (or an unknown id) gives zeros."""
    row = session.execute(
        select(
            func.count(FrameStat.id),
            _total(case((FrameStat.faces > 0, 1), else_=0)),
            _total(FrameStat.faces),
            _total(FrameStat.masked),
            _total(FrameStat.unmasked),
            _total(FrameStat.incorrect),
        ).where(FrameStat.job_id == job_id)
    ).one()
    return FaceCounts(*(int(value) for value in row))


def worst_frames(session: Session, job_id: str, limit: int = 5) -> list[FrameCounts]:
    """The frames with faces that have the most non-compliant faces.

    Ordered by unmasked + incorrect (descending), then by the masked share (ascending),
    then by frame_index.
    """
    if limit < 1:
        raise ValueError("limit must be >= 1")
    query = (
        select(
            FrameStat.frame_index,
            FrameStat.timestamp_s,
            FrameStat.faces,
            FrameStat.masked,
            FrameStat.unmasked,
            FrameStat.incorrect,
        )
        .where(FrameStat.job_id == job_id, FrameStat.faces > 0)
        .order_by(
            (FrameStat.unmasked + FrameStat.incorrect).desc(),
            cast(FrameStat.masked, Float) / FrameStat.faces,
            FrameStat.frame_index,
        )
        .limit(limit)
    )
    return [FrameCounts(**row._asdict()) for row in session.execute(query)]


def bucket_start(
    dialect: str, bucket: BucketSize, column: Any = FrameStat.captured_at
) -> ColumnElement[Any]:
    """The start of the UTC ``bucket`` holding ``column`` (a stored UTC time), in SQL."""
    if dialect == "postgresql":
        # timezone('UTC', ...) first: date_trunc on timestamptz truncates in the session's
        # TimeZone, which would put day boundaries at local midnight.
        return func.date_trunc(
            literal(bucket, literal_execute=True), func.timezone("UTC", column)
        )
    if dialect == "sqlite":
        return func.strftime(
            literal(_SQLITE_BUCKET_FORMATS[bucket], literal_execute=True), column
        )
    raise NotImplementedError(f"compliance_timeseries does not support {dialect}")


def as_utc(value: datetime | str) -> datetime:
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def check_bucket(bucket: str) -> None:
    """Raise ValueError on an unknown bucket size."""
    if bucket not in BUCKET_SIZES:
        raise ValueError(f"bucket must be one of {sorted(BUCKET_SIZES)}")


_Query = TypeVar("_Query", bound=Select)


def of_succeeded_jobs(
    query: _Query,
    job_id: InstrumentedAttribute[str],
    at: InstrumentedAttribute[datetime],
    filters: ReportFilter,
) -> _Query:
    """``query``'s rows (``job_id`` their job, ``at`` their moment) narrowed to what
    ``filters`` count: the filters of every report over time and of alert windows."""
    query = (
        query.join(Job, Job.id == job_id)
        .join(Camera, Camera.id == Job.camera_id)
        .where(Job.status == JobStatus.SUCCEEDED)
    )
    if filters.site is not None:
        query = query.where(Camera.site == filters.site)
    if filters.camera is not None:
        query = query.where(Camera.name == filters.camera)
    if filters.start is not None:
        query = query.where(at >= filters.start)
    if filters.end is not None:
        query = query.where(at <= filters.end if filters.end_inclusive else at < filters.end)
    return query


def compliance_timeseries(
    session: Session, filters: ReportFilter, bucket: BucketSize
) -> list[Bucket]:
    """Face counts of the frames ``filters`` count, grouped by UTC minute, hour or day of
    capture (``filters.start``/``end`` apply to the capture time).

    Returns:
        One Bucket per period that has frames, oldest first; empty periods are left out.

    Raises:
        ValueError: on an unknown bucket size.
    """
    check_bucket(bucket)
    bucket_expr = bucket_start(session.get_bind().dialect.name, bucket).label("bucket_start")
    query = (
        select(
            bucket_expr,
            _total(FrameStat.faces),
            _total(FrameStat.masked),
            _total(FrameStat.unmasked),
            _total(FrameStat.incorrect),
        )
        # Grouping by the output name keeps PostgreSQL from seeing two different expressions.
        .group_by(literal_column("bucket_start"))
        .order_by(literal_column("bucket_start"))
    )
    query = of_succeeded_jobs(query, FrameStat.job_id, FrameStat.captured_at, filters)
    return [
        Bucket(
            start=as_utc(row[0]),
            counts=FaceCounts(
                faces=int(row[1]), masked=int(row[2]), unmasked=int(row[3]), incorrect=int(row[4])
            ),
        )
        for row in session.execute(query)
    ]
