"""People counted by real workers over several segments equal the one-process count."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ml.people_footage import (
    BOUNDARIES,
    BOUNDARIES_PEOPLE,
    BOUNDARIES_SECONDS,
    make_people_video,
)
from storage.models import JobStatus, Track
from storage.repositories import tracks as track_repo
from tests.distributed.dist_support import (
    SEGMENT_SECONDS,
    Cluster,
    get_job,
    run_in_process,
    segment_rows,
    wait_finished,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PEOPLE_FPS = 5.0  # tracking wants the default sample rate


@pytest.fixture(scope="module")
def people_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("people") / "boundaries.mp4"
    return make_people_video(out, BOUNDARIES, BOUNDARIES_SECONDS)


def track_rows(
    session_factory: sessionmaker[Session], job_id: str
) -> list[tuple[int | None, int, int, str, float, float, int]]:
    with session_factory() as session:
        tracks = session.scalars(
            select(Track).where(Track.job_id == job_id).order_by(Track.track_index)
        )
        return [
            (
                t.track_index,
                t.first_frame_index,
                t.last_frame_index,
                t.label,
                round(t.seconds_seen, 3),
                round(t.seconds_masked, 3),
                t.readings,
            )
            for t in tracks
        ]


def test_two_workers_count_the_same_people_as_one_process(
    cluster: Cluster, people_video: Path
) -> None:
    distributed_id = cluster.submit(people_video, sample_fps=PEOPLE_FPS)

    local_id = run_in_process(cluster.session_factory, people_video, sample_fps=PEOPLE_FPS)

    job = wait_finished(cluster.session_factory, distributed_id, timeout_s=240)
    assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
    assert get_job(cluster.session_factory, local_id).status is JobStatus.SUCCEEDED
    segments = segment_rows(cluster.session_factory, distributed_id)
    assert SEGMENT_SECONDS == 4 and len(segments) == 3
    assert len({s.worker for s in segments}) >= 2, "both workers should have taken segments"

    with cluster.session_factory() as session:
        distributed = track_repo.people_summary(session, distributed_id)
        local = track_repo.people_summary(session, local_id)
    assert distributed == local
    assert (local.total, local.masked, local.unmasked) == tuple(BOUNDARIES_PEOPLE.values())
    # the same tracks, frame for frame: stitched over both cuts, nobody counted twice
    assert track_rows(cluster.session_factory, distributed_id) == track_rows(
        cluster.session_factory, local_id
    )
