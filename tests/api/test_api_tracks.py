"""/v1/jobs/{id}/tracks: a job's people; and what its frames and tracks share: one way of
paging a job's rows (api/routes/jobs.py, JobRowsDep)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from storage.models import Job, JobStatus
from tests.api.api_support import Keys, bearer, frame, job_rows, person


def test_tracks_are_paged_in_order_of_appearance(
    client: TestClient, keys: Keys, make_job: Callable[..., Job]
) -> None:
    people = [
        person(10, 4.0, "without_mask", seconds=1.0),
        person(11, 0.0, "with_mask", seconds=3.0),
        person(12, 2.0, "incorrect_mask"),
    ]
    job = make_job(status=JobStatus.SUCCEEDED, frames=[frame(0, 0.0, 1, 0)], people=people)
    assert job_rows(client, keys.north, job.id, "tracks", offset=1, limit=2) == {
        "items": [
            {
                "track_id": 2,
                "first_frame_index": 10,
                "last_frame_index": 19,
                "first_s": 2.0,
                "last_s": 3.8,
                "seconds_seen": 2.0,
                "seconds_masked": 0.0,
                "seconds_unmasked": 0.0,
                "seconds_incorrect": 2.0,
                "readings": 10,
                "label": "incorrect_mask",
                "box": [10.0, 10.0, 50.0, 50.0],
            },
            {
                "track_id": 3,
                "first_frame_index": 20,
                "last_frame_index": 24,
                "first_s": 4.0,
                "last_s": 4.8,
                "seconds_seen": 1.0,
                "seconds_masked": 0.0,
                "seconds_unmasked": 1.0,
                "seconds_incorrect": 0.0,
                "readings": 5,
                "label": "without_mask",
                "box": [10.0, 10.0, 50.0, 50.0],
            },
        ],
        "total": 3,
    }


@pytest.mark.parametrize("rows", ["frames", "tracks"])
def test_a_jobs_rows_are_paged_within_bounds_and_only_for_its_site(
    client: TestClient, keys: Keys, make_job: Callable[..., Job], rows: str
) -> None:
    job = make_job(
        site="south",
        status=JobStatus.SUCCEEDED,
        frames=[frame(0, 0.0, 1, 0)],
        people=[person(1, 0.0, "with_mask")],
    )
    path = f"/v1/jobs/{job.id}/{rows}"
    assert client.get(path, headers=bearer(keys.north)).status_code == 404
    assert job_rows(client, keys.admin, job.id, rows)["total"] == 1
    for out_of_bounds in ({"limit": 1001}, {"limit": 0}, {"offset": -1}):
        response = client.get(path, params=out_of_bounds, headers=bearer(keys.admin))
        assert response.status_code == 422, out_of_bounds
