"""/v1/jobs/{id}/tracks: a job's people, paged like its frames."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from storage.models import Job, JobStatus
from tests.api.api_support import Keys, bearer, frame, person


def test_tracks_are_paged_in_order_of_appearance(
    client: TestClient, keys: Keys, make_job: Callable[..., Job]
) -> None:
    people = [
        person(10, 4.0, "without_mask", seconds=1.0),
        person(11, 0.0, "with_mask", seconds=3.0),
        person(12, 2.0, "incorrect_mask"),
    ]
    job = make_job(status=JobStatus.SUCCEEDED, frames=[frame(0, 0.0, 1, 0)], people=people)
    response = client.get(
        f"/v1/jobs/{job.id}/tracks", params={"offset": 1, "limit": 2}, headers=bearer(keys.north)
    )
    assert response.status_code == 200
    assert response.json() == {
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
    too_big = client.get(
        f"/v1/jobs/{job.id}/tracks", params={"limit": 1001}, headers=bearer(keys.north)
    )
    assert too_big.status_code == 422


def test_tracks_of_another_sites_job_are_not_found(
    client: TestClient, keys: Keys, make_job: Callable[..., Job]
) -> None:
    job = make_job(
        site="south", status=JobStatus.SUCCEEDED, people=[person(1, 0.0, "with_mask")]
    )
    response = client.get(f"/v1/jobs/{job.id}/tracks", headers=bearer(keys.north))
    assert response.status_code == 404
    own = client.get(f"/v1/jobs/{job.id}/tracks", headers=bearer(keys.admin))
    assert own.json()["total"] == 1
