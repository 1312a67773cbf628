"""Annotated videos of jobs: requesting one, and the worker's progress on it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from storage.models import AnnotatedVideo, VideoStatus, utcnow

MAX_ERROR_CHARS = 2000
UNFINISHED = (VideoStatus.QUEUED, VideoStatus.RUNNING)


def get_video(session: Session, job_id: str) -> AnnotatedVideo | None:
    return session.get(AnnotatedVideo, job_id)


def request_video(
    session: Session, job_id: str, *, blur_faces: bool
) -> tuple[AnnotatedVideo, bool]:
    """The job's video, queued afresh unless one is queued or running; True if (re)queued."""
    video = get_video(session, job_id)
    now = utcnow()
    if video is None:
        video = AnnotatedVideo(
            job_id=job_id, status=VideoStatus.QUEUED, blur_faces=blur_faces, created_at=now,
            updated_at=now,
        )
        session.add(video)
        session.flush()
        return video, True
    if video.status in UNFINISHED:
        return video, False
    video.status, video.blur_faces, video.frames, video.error = (
        VideoStatus.QUEUED, blur_faces, None, None
    )
    video.updated_at = now
    session.flush()
    return video, True


def start(session: Session, job_id: str) -> bool:
    """Queued -> running in one conditional UPDATE; False when another run has it or it is done."""
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(AnnotatedVideo)
        .where(AnnotatedVideo.job_id == job_id, AnnotatedVideo.status == VideoStatus.QUEUED)
        .values(status=VideoStatus.RUNNING, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def finish(session: Session, job_id: str, *, frames: int | None, error: str | None) -> None:
    """Record the outcome: succeeded with its frame count, or failed with the reason."""
    session.execute(
        update(AnnotatedVideo)
        .where(AnnotatedVideo.job_id == job_id)
        .values(
            status=VideoStatus.FAILED if error else VideoStatus.SUCCEEDED,
            frames=frames,
            error=None if error is None else error[:MAX_ERROR_CHARS],
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
