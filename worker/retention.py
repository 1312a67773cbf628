"""Deleting what a job left behind: a whole job on request, uploads once they are old."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import redis
from sqlalchemy.orm import Session

from maskwatch.settings import Settings
from storage.models import Job, utcnow
from storage.repositories import jobs as job_repo
from worker.evidence import video_path

logger = logging.getLogger(__name__)

RETENTION_BATCH = 500  # uploads forgotten per commit

# The service layer of deletion: the caller commits, then removes the files returned, so a
# failed commit never leaves a job pointing at a file that is gone.


def upload_of(job: Job, upload_dir: Path) -> Path | None:
    """The job's input if it is an upload (a file under ``upload_dir``), else None.

    A job made by ``maskwatch analyze`` reads the user's own file, which is never ours to
    delete.
    """
    if job.input_path == job_repo.FOOTAGE_REMOVED:
        return None
    path = Path(job.input_path)
    root = upload_dir.resolve()
    return path if path.is_relative_to(root) and path != root else None


def derived_files(upload_dir: Path, job_id: str) -> list[Path]:
    """Files MaskWatch rendered from a job's footage (its annotated video): personal data
    like the footage itself, so they go wherever the footage goes."""
    return [video_path(upload_dir, job_id)]


def delete_job(
    session: Session,
    job: Job,
    upload_dir: Path,
    cancel: Callable[[Session, Job], None],
) -> list[Path]:
    """Delete a job and its rows, cancelling it first if it is queued or running.

    Segment tasks of a cancelled job stop at their next batch; one that was storing a
    batch meanwhile finds its job gone. Returns the files to remove after the commit: the
    upload (if it is one) and what was rendered from it.
    """
    if job.status not in job_repo.FINISHED:
        # It may finish meanwhile: then it is deleted all the same.
        with contextlib.suppress(job_repo.InvalidJobTransition):
            cancel(session, job)
    upload = upload_of(job, upload_dir)
    job_repo.delete_job(session, job.id)
    return ([upload] if upload else []) + derived_files(upload_dir, job.id)


def remove_files(paths: list[Path]) -> int:
    """Delete these files (after the commit); a missing one is fine. Returns how many went."""
    removed = 0
    for path in paths:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError:
            logger.exception("could not delete %s; delete it by hand", path)
    return removed


@dataclass
class Expired:
    """What one retention pass found."""

    job_ids: list[str]
    files: list[Path]  # their uploads and what was rendered from them


def expire_uploads(
    session: Session, upload_dir: Path, retention_days: float, batch: int = RETENTION_BATCH
) -> Expired:
    """Forget the uploads of jobs finished more than ``retention_days`` ago (caller commits,
    then ``remove_files(expired.uploads)``). Their statistics and reports stay."""
    cutoff = utcnow() - timedelta(days=retention_days)
    found = job_repo.jobs_with_uploads_finished_before(
        session, cutoff, str(upload_dir.resolve()), limit=batch
    )
    for job_id, _ in found:
        job_repo.forget_upload(session, job_id)
    return Expired(
        [job_id for job_id, _ in found],
        [Path(path) for _, path in found]
        + [file for job_id, _ in found for file in derived_files(upload_dir, job_id)],
    )


RETENTION_LOCK_KEY = "maskwatch:retention"


def apply_retention(settings: Settings) -> int:
    """Delete the uploads past ``upload_retention_days``; run periodically by the workers.

    At most one worker per ``retention_interval_s`` does it (a Redis lock), whichever
    comes first. Returns how many uploads were deleted.
    """
    if settings.upload_retention_days is None:
        return 0
    client = redis.Redis.from_url(settings.broker_url)
    try:
        lock_s = max(1, int(settings.retention_interval_s))
        if not client.set(RETENTION_LOCK_KEY, 1, nx=True, ex=lock_s):
            return 0
    finally:
        client.close()
    from storage.db import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    removed = 0
    try:
        with make_session_factory(engine)() as session:
            while True:
                expired = expire_uploads(
                    session, settings.upload_dir, settings.upload_retention_days, RETENTION_BATCH
                )
                session.commit()
                removed += remove_files(expired.files)
                if len(expired.job_ids) < RETENTION_BATCH:
                    break
    finally:
        engine.dispose()  # the worker's main process forks: no connection may outlive this
    if removed:
        logger.info(
            "deleted %d upload(s) of jobs finished over %g day(s) ago",
            removed,
            settings.upload_retention_days,
        )
    return removed
