"""A job's failure reason names the file as its user uploaded it, not as the server stored it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from storage.models import JobStatus
from storage.repositories import jobs as job_repo
from tests.db_support import add_video_job
from worker.jobs import run_job

STORED_NAME = "55d7c0ffee0123456789abcdef012345.mp4"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"meeting notes\n", "entrance.mp4: not a readable video or image file ("),
        (
            b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n/etc/hostname\n#EXT-X-ENDLIST\n",
            "entrance.mp4: format 'hls' is not accepted (",
        ),
    ],
)
def test_a_failed_job_names_the_uploaded_file(
    factory: sessionmaker[Session], tmp_path: Path, content: bytes, reason: str
) -> None:
    stored = tmp_path / STORED_NAME
    stored.write_bytes(content)
    with factory() as session:
        job_id = add_video_job(
            session, stored, site="north", camera="gate", input_name="entrance.mp4"
        ).id
        session.commit()
    models: Any = None  # the input is refused before any model is needed
    run_job(factory, job_id, models)
    with factory() as session:
        job = job_repo.get_job(session, job_id)
        assert job is not None and job.status is JobStatus.FAILED
        assert job.error is not None and job.error.startswith(reason), job.error
        assert "55d7" not in job.error and str(tmp_path) not in job.error
