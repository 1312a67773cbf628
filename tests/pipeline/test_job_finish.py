"""finish_job: footage in which nobody appears succeeds; only footage with no frame fails."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from maskwatch.core.records import FrameRecord
from storage.models import JobStatus
from storage.repositories import frames as frame_repo
from storage.repositories import jobs as job_repo
from tests.db_support import add_video_job
from worker.jobs import finish_job


@pytest.mark.parametrize(
    ("faces_per_frame", "status", "error", "frames_total"),
    [
        ([], JobStatus.FAILED, "night.mp4: no frame could be decoded", 12),
        ([0, 0, 0], JobStatus.SUCCEEDED, None, 3),  # quiet hours: a result
        ([1, 0, 2], JobStatus.SUCCEEDED, None, 3),
    ],
)
def test_finish_job(
    factory: sessionmaker[Session],
    faces_per_frame: list[int],
    status: JobStatus,
    error: str | None,
    frames_total: int,
) -> None:
    with factory() as session:
        job = add_video_job(
            session, "/srv/x.mp4", site="north", camera="gate", input_name="night.mp4"
        )
        job_repo.mark_running(session, job, frames_total=12)  # the header's estimate
        records = [
            FrameRecord(frame_index=i, timestamp_s=float(i), faces=n, masked=n, unmasked=0,
                        incorrect=0)
            for i, n in enumerate(faces_per_frame)
        ]  # fmt: skip
        if records:
            frame_repo.replace_frames(session, job, records)
            job_repo.add_progress(session, job.id, len(records))
        finish_job(session, job)
        session.commit()
        session.refresh(job)
        assert (job.status, job.error, job.frames_total) == (status, error, frames_total)
