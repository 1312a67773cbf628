"""Tracks of a job (one per appearance of a person): segment pieces, stitching, people counts."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, insert, literal_column, select, update
from sqlalchemy.orm import Session

from maskwatch.core.counts import PeopleCounts
from maskwatch.core.labels import MASK_LABELS, Label
from maskwatch.core.records import TrackRecord
from maskwatch.core.reports import BucketSize, ReportFilter
from storage.models import FaceDetection, Job, Track
from storage.repositories import reports as report_repo
from storage.repositories.pages import page_of

MAX_PAGE_SIZE = 1000
Box = tuple[float, float, float, float]


def _values(job: Job, record: TrackRecord) -> dict[str, Any]:
    if record.label not in MASK_LABELS:
        raise ValueError(f"track {record.segment_track}: unknown label {record.label!r}")
    handoff = None
    if record.handoff is not None:
        handoff = {"frame_index": record.handoff[0], "box": list(record.handoff[1])}
    x1, y1, x2, y2 = record.box
    return {
        "first_frame_index": record.first_frame_index,
        "last_frame_index": record.last_frame_index,
        "first_s": record.first_s,
        "last_s": record.last_s,
        "first_seen_at": job.recorded_at + timedelta(seconds=record.first_s),
        "seconds_seen": record.seconds_seen,
        "seconds_masked": record.seconds_masked,
        "seconds_unmasked": record.seconds_unmasked,
        "seconds_incorrect": record.seconds_incorrect,
        "readings": record.readings,
        "label": record.label,
        "x1": x1,
        "y1": y1,
        "x2": x2,
        "y2": y2,
        "box_score": record.box_score,
        "handoff": handoff,
    }


def delete_segment_tracks(session: Session, job_id: str, segment_index: int) -> None:
    """Forget a segment's tracks (its run starts again); their faces lose the reference."""
    session.execute(
        delete(Track)
        .where(Track.job_id == job_id, Track.segment_index == segment_index)
        .execution_options(synchronize_session=False)
    )


def save_tracks(
    session: Session, job: Job, records: Sequence[TrackRecord], known: Mapping[int, int]
) -> dict[int, int]:
    """Insert the segment's new tracks and update the known ones to their latest figures.

    Args:
        known: stored id by ``segment_track`` of the tracks saved before in this run.

    Returns:
        The stored id of every track in ``records``, by ``segment_track``.
    """
    ids: dict[int, int] = {}
    for record in records:
        values = _values(job, record)
        stored = known.get(record.segment_track)
        if stored is None:
            stored = session.execute(
                insert(Track)
                .values(
                    job_id=job.id,
                    segment_index=record.segment_index,
                    segment_track=record.segment_track,
                    **values,
                )
                .returning(Track.id)
            ).scalar_one()
        else:
            session.execute(
                update(Track)
                .where(Track.id == stored)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        ids[record.segment_track] = stored
    return ids


def job_tracks(session: Session, job_id: str) -> list[Track]:
    """Every stored track of the job, in segment then first-frame order."""
    return list(
        session.scalars(
            select(Track)
            .where(Track.job_id == job_id)
            .order_by(Track.segment_index, Track.first_frame_index, Track.id)
        )
    )


def track_numbers(session: Session, job_id: str) -> dict[int, int]:
    """The job's track number (``track_index``, what reports and the dashboard show) by
    stored track id; tracks not numbered yet (an unfinished job) are absent."""
    rows = session.execute(
        select(Track.id, Track.track_index).where(
            Track.job_id == job_id, Track.track_index.is_not(None)
        )
    )
    return {int(track_id): int(number or 0) for track_id, number in rows}


def face_boxes(
    session: Session, job_id: str, frame_indices: Sequence[int]
) -> dict[tuple[int, int], Box]:
    """Boxes of the job's tracked faces at these frames, by (track id, frame index)."""
    if not frame_indices:
        return {}
    rows = session.execute(
        select(
            FaceDetection.track_id,
            FaceDetection.frame_index,
            FaceDetection.x1,
            FaceDetection.y1,
            FaceDetection.x2,
            FaceDetection.y2,
        ).where(
            FaceDetection.job_id == job_id,
            FaceDetection.track_id.is_not(None),
            FaceDetection.frame_index.in_(sorted(set(frame_indices))),
        )
    )
    return {(int(r[0] or 0), int(r[1])): (r[2], r[3], r[4], r[5]) for r in rows}


def absorb(session: Session, into: Track, other: Track, label: str) -> None:
    """Make ``other`` (a later piece of the same person) part of ``into`` and delete it."""
    into.last_frame_index = other.last_frame_index
    into.last_s = other.last_s
    into.seconds_seen += other.seconds_seen
    into.seconds_masked += other.seconds_masked
    into.seconds_unmasked += other.seconds_unmasked
    into.seconds_incorrect += other.seconds_incorrect
    into.readings += other.readings
    into.label = label
    if other.box_score > into.box_score:
        into.x1, into.y1, into.x2, into.y2 = other.x1, other.y1, other.x2, other.y2
        into.box_score = other.box_score
    session.execute(
        update(FaceDetection)
        .where(FaceDetection.track_id == other.id)
        .values(track_id=into.id)
        .execution_options(synchronize_session=False)
    )
    session.delete(other)


def list_tracks(
    session: Session, job_id: str, offset: int = 0, limit: int = 100
) -> tuple[list[Track], int]:
    """One page of the job's tracks in order of appearance, and the job's track count."""
    return page_of(
        session,
        select(Track)
        .where(Track.job_id == job_id)
        .order_by(Track.track_index, Track.first_s, Track.id),
        select(func.count(Track.id)).where(Track.job_id == job_id),
        offset=offset,
        limit=limit,
        max_size=MAX_PAGE_SIZE,
    )


def _total(column: Any) -> Any:
    return func.coalesce(func.sum(column), 0)


def _count_where(condition: Any) -> Any:
    return _total(case((condition, 1), else_=0))


def people_columns() -> tuple[Any, ...]:
    """Aggregates over Track rows, in PeopleCounts' field order (for grouped queries too)."""
    return (
        func.count(Track.id),
        _count_where(Track.label == Label.WITH_MASK.value),
        _count_where(Track.label == Label.WITHOUT_MASK.value),
        _count_where(Track.label == Label.INCORRECT_MASK.value),
        _count_where(Track.seconds_unmasked > 0),
        _total(Track.seconds_seen),
        _total(Track.seconds_masked),
    )


def people_of(row: Sequence[Any]) -> PeopleCounts:
    """PeopleCounts from the values of ``people_columns()``."""
    total, masked, unmasked, incorrect, ever_unmasked, seen, seconds_masked = row
    return PeopleCounts(
        total=int(total),
        masked=int(masked),
        unmasked=int(unmasked),
        incorrect=int(incorrect),
        ever_unmasked=int(ever_unmasked),
        seconds_seen=round(float(seen), 4),
        seconds_masked=round(float(seconds_masked), 4),
    )


def people_summary(session: Session, job_id: str) -> PeopleCounts:
    """People seen in the job (its tracks); zeros for a job without tracks."""
    row = session.execute(select(*people_columns()).where(Track.job_id == job_id)).one()
    return people_of(row)


def people_summaries(session: Session, job_ids: Collection[str]) -> dict[str, PeopleCounts]:
    """``people_summary`` of many jobs in one query; jobs without tracks are absent."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(Track.job_id, *people_columns())
        .where(Track.job_id.in_(list(job_ids)))
        .group_by(Track.job_id)
    )
    return {row[0]: people_of(row[1:]) for row in rows}


def people_timeseries(
    session: Session, filters: ReportFilter, bucket: BucketSize
) -> dict[datetime, PeopleCounts]:
    """The people ``filters`` count, by the UTC bucket of their first appearance.

    A person is counted once, in the bucket they were first seen in (``filters.start``/``end``
    apply to that moment), as ``reports.compliance_timeseries`` counts frames.

    Raises:
        ValueError: on an unknown bucket size.
    """
    report_repo.check_bucket(bucket)
    dialect = session.get_bind().dialect.name
    bucket_expr = report_repo.bucket_start(dialect, bucket, Track.first_seen_at)
    query = (
        select(bucket_expr.label("bucket_start"), *people_columns())
        .group_by(literal_column("bucket_start"))
    )
    query = report_repo.of_succeeded_jobs(query, Track.job_id, Track.first_seen_at, filters)
    return {report_repo.as_utc(row[0]): people_of(row[1:]) for row in session.execute(query)}
