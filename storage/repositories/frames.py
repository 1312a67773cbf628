"""Per-frame statistics and face detections of a job."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import CursorResult, delete, func, insert, select
from sqlalchemy.orm import Session

from maskwatch.core.labels import MASK_LABELS
from maskwatch.core.records import FaceRecord, FrameRecord
from storage.models import FaceDetection, FrameStat, Job
from storage.repositories.pages import page_of

MAX_PAGE_SIZE = 1000


def _validate(records: Sequence[FrameRecord]) -> None:
    seen: set[int] = set()
    for record in records:
        if record.frame_index in seen:
            raise ValueError(f"frame_index {record.frame_index} appears twice")
        seen.add(record.frame_index)
        counts = (record.faces, record.masked, record.unmasked, record.incorrect)
        if min(counts) < 0:
            raise ValueError(f"frame {record.frame_index}: negative face count")
        for face in record.detections:
            if face.label not in MASK_LABELS:
                raise ValueError(f"frame {record.frame_index}: unknown label {face.label!r}")


def _detection_row(
    job_id: str, frame_index: int, face: FaceRecord, track_ids: Mapping[int, int]
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "frame_index": frame_index,
        "x1": face.x1,
        "y1": face.y1,
        "x2": face.x2,
        "y2": face.y2,
        "label": face.label,
        "score": face.score,
        "face_prob": face.face_prob,
        "track_id": None if face.track_key is None else track_ids[face.track_key],
    }


def replace_frames(
    session: Session,
    job: Job,
    records: Sequence[FrameRecord],
    track_ids: Mapping[int, int] | None = None,
) -> None:
    """Store ``records`` for ``job``, replacing what was stored for that stretch of frames.

    Every frame and detection of the job whose frame_index lies in
    [min(frame_index), max(frame_index)] of ``records`` is deleted first, so re-running a
    segment (a retried task) leaves exactly one row per frame. Rows are written with one
    executemany INSERT per table. ``captured_at`` is ``job.recorded_at + timestamp_s``.

    Args:
        track_ids: the stored track id of each face's ``track_key`` (tracks.save_tracks).

    Raises:
        ValueError: on a repeated frame_index, a negative count or an unknown face label.
    """
    if not records:
        return
    _validate(records)
    first = min(record.frame_index for record in records)
    last = max(record.frame_index for record in records)
    delete_frames_in_range(session, job.id, first, last)

    frame_rows = [
        {
            "job_id": job.id,
            "frame_index": record.frame_index,
            "timestamp_s": record.timestamp_s,
            "captured_at": job.recorded_at + timedelta(seconds=record.timestamp_s),
            "faces": record.faces,
            "masked": record.masked,
            "unmasked": record.unmasked,
            "incorrect": record.incorrect,
            "mode": record.mode,
        }
        for record in records
    ]
    session.execute(insert(FrameStat), frame_rows)
    detection_rows = [
        _detection_row(job.id, record.frame_index, face, track_ids or {})
        for record in records
        for face in record.detections
    ]
    if detection_rows:
        session.execute(insert(FaceDetection), detection_rows)


def delete_frames_in_range(session: Session, job_id: str, first_index: int, last_index: int) -> int:
    """Delete the job's frames and detections with first_index <= frame_index <= last_index.

    Returns:
        The number of frame_stats rows deleted.
    """
    session.execute(
        delete(FaceDetection)
        .where(
            FaceDetection.job_id == job_id,
            FaceDetection.frame_index.between(first_index, last_index),
        )
        .execution_options(synchronize_session=False)
    )
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        delete(FrameStat)
        .where(FrameStat.job_id == job_id, FrameStat.frame_index.between(first_index, last_index))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def list_frames(
    session: Session, job_id: str, offset: int = 0, limit: int = 100
) -> tuple[list[FrameStat], int]:
    """One page of the job's frames in frame order, and the job's frame count."""
    return page_of(
        session,
        select(FrameStat).where(FrameStat.job_id == job_id).order_by(FrameStat.frame_index),
        select(func.count(FrameStat.id)).where(FrameStat.job_id == job_id),
        offset=offset,
        limit=limit,
        max_size=MAX_PAGE_SIZE,
    )


def list_detections(
    session: Session, job_id: str, frame_index: int | None = None
) -> list[FaceDetection]:
    """The job's face detections (of one frame if ``frame_index`` is given), in frame order."""
    query = select(FaceDetection).where(FaceDetection.job_id == job_id)
    if frame_index is not None:
        query = query.where(FaceDetection.frame_index == frame_index)
    return list(session.scalars(query.order_by(FaceDetection.frame_index, FaceDetection.id)))
