"""Evidence stills: an analysed frame of the uploaded footage with its faces boxed, labelled
and (by default) blurred; only uploads are ever read, and footage no longer kept is 410."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.orm import Session

from maskwatch.core.records import FaceRecord
from maskwatch.settings import Settings
from storage.models import Job, JobStatus
from tests.api.api_support import Keys, bearer, frame, person
from worker.pipeline.evidence import BLUR_PAD_ABOVE, BLUR_PAD_BELOW, BLUR_PAD_SIDE, blur_faces

BOX = (40, 30, 100, 90)  # where api_support.frame() puts no face; set below per test


@pytest.fixture
def footage_job(
    make_job: Callable[..., Job], session: Session, upload_dir: Path, video_bytes: bytes
) -> Job:
    """A succeeded north/gate job whose upload (a 1 s, 5 fps test pattern) is still kept;
    its five frames each hold one unmasked face at BOX."""
    upload_dir.mkdir(parents=True, exist_ok=True)
    path = upload_dir / "0123abcd.mp4"
    path.write_bytes(video_bytes)
    frames = []
    for i in range(5):
        record = frame(i, i * 0.2, 0, 1)
        record.detections[:] = [FaceRecord(*BOX, "without_mask", 0.9, 0.95)]
        frames.append(record)
    job = make_job(status=JobStatus.SUCCEEDED, frames=frames)
    job.input_path = str(path)
    session.commit()
    return job


def still(response: Any) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"].startswith("private")
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")).astype(float)


def inside(image: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = BOX
    return image[y1 + 6 : y2 - 6, x1 + 6 : x2 - 6]  # inside the drawn outline


def test_a_still_blurs_the_face_and_keeps_the_rest(
    app_factory: Callable[..., Any], settings: Settings, keys: Keys, footage_job: Job
) -> None:
    path = f"/v1/jobs/{footage_job.id}/frames/3/evidence.jpg"
    with TestClient(app_factory()) as client:
        blurred = still(client.get(path, headers=bearer(keys.north)))
    sharp_app = app_factory(settings=settings.model_copy(update={"blur_faces": False}))
    with TestClient(sharp_app) as client:
        sharp = still(client.get(path, headers=bearer(keys.north)))
    assert blurred.shape == sharp.shape == (120, 160, 3)  # the footage's own size
    # The test pattern is busy everywhere: blurred, the face's box loses most of its detail.
    detail = lambda image: float(np.abs(np.diff(inside(image), axis=1)).mean())  # noqa: E731
    assert detail(blurred) < 0.5 * detail(sharp)
    # Outside the face (and its padding, and the label above it) the frames agree.
    assert np.abs(blurred[110:, :15] - sharp[110:, :15]).mean() < 4
    # The box is drawn in the unmasked colour (red) on its left edge.
    edge = blurred[BOX[1] + 10 : BOX[3] - 10, BOX[0]]
    assert edge[:, 0].mean() > 150 and edge[:, 1].mean() < 90


def test_a_still_numbers_each_tracked_face_by_person_like_the_jobs_tracks(
    client: TestClient, keys: Keys, make_job: Callable[..., Job], footage_job: Job,
    session: Session,
) -> None:
    frames = []
    for i in range(5):
        record = frame(i, i * 0.2, 0, 1)
        record.detections[:] = [FaceRecord(*BOX, "without_mask", 0.9, 0.95, track_key=7)]
        frames.append(record)
    tracked = make_job(status=JobStatus.SUCCEEDED, frames=frames,
                       people=[person(7, 0.0, "without_mask", seconds=1.0)])
    tracked.input_path = footage_job.input_path
    session.commit()
    [track] = client.get(f"/v1/jobs/{tracked.id}/tracks", headers=bearer(keys.north)).json()[
        "items"
    ]
    assert track["track_id"] == 1  # the job's number, not the tracker's key (7)
    numbered = still(client.get(f"/v1/jobs/{tracked.id}/frames/3/evidence.jpg",
                                headers=bearer(keys.north)))
    plain = still(client.get(f"/v1/jobs/{footage_job.id}/frames/3/evidence.jpg",
                             headers=bearer(keys.north)))
    # "#1" on the unmasked colour (red) just under the box; the same frame without a track
    # has nothing there, and the two agree elsewhere.
    x1, _, _, y2 = BOX
    tag = numbered[y2 + 3 : y2 + 12, x1 + 1 : x1 + 12]
    assert tag[..., 0].mean() > 150 and tag[..., 1].mean() < 120
    assert np.abs(tag - plain[y2 + 3 : y2 + 12, x1 + 1 : x1 + 12]).mean() > 30
    assert np.abs(numbered[:, 110:] - plain[:, 110:]).mean() < 4


def test_stills_are_refused_with_the_reason(
    client: TestClient, keys: Keys, footage_job: Job, session: Session, tmp_path: Path
) -> None:
    base = f"/v1/jobs/{footage_job.id}/frames"
    assert client.get(f"{base}/0/evidence.jpg").status_code == 401
    assert client.get(f"{base}/0/evidence.jpg", headers=bearer(keys.south)).status_code == 404
    missing = client.get(f"{base}/7/evidence.jpg", headers=bearer(keys.north))
    assert (missing.status_code, missing.json()["detail"]) == (404, "the job analysed no frame 7")

    outside = tmp_path / "not-an-upload.mp4"
    outside.write_bytes(Path(footage_job.input_path).read_bytes())
    footage_job.input_path = str(outside)
    session.commit()
    refused = client.get(f"{base}/0/evidence.jpg", headers=bearer(keys.north))
    assert (refused.status_code, refused.json()["detail"]) == (
        410, "this job's footage was not uploaded to this server"
    )
    footage_job.input_path = str(Path(client.app.state.services.settings.upload_dir) / "gone.mp4")
    session.commit()
    gone = client.get(f"{base}/0/evidence.jpg", headers=bearer(keys.north))
    assert (gone.status_code, gone.json()["detail"]) == (
        410, "this job's footage is no longer kept"
    )


@pytest.mark.parametrize(
    "box",
    [(10, 10, 50, 50), (40, 60, 80, 100), (0, 0, 30, 30), (140, 100, 200, 160), (60, 60, 60, 60)],
    ids=["inside", "room-above", "corner", "past-the-edge", "empty"],
)
def test_blur_changes_only_the_padded_box(box: tuple[int, int, int, int]) -> None:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    out = blur_faces(image, [FaceRecord(*box, "with_mask", 0.9, 0.9)])
    changed = np.argwhere(np.any(out != image, axis=2))
    if box[2] == box[0]:
        assert changed.size == 0
        return
    pad_x = (box[2] - box[0]) * BLUR_PAD_SIDE
    above, below = (box[3] - box[1]) * BLUR_PAD_ABOVE, (box[3] - box[1]) * BLUR_PAD_BELOW
    assert changed[:, 1].min() >= box[0] - pad_x - 1 and changed[:, 1].max() <= box[2] + pad_x
    assert changed[:, 0].min() >= box[1] - above - 1 and changed[:, 0].max() <= box[3] + below
    assert len(changed) > 0.8 * (min(box[2], 160) - box[0]) * (min(box[3], 120) - box[1])
    if box[1] - above >= 0:  # eyes and hair above a (masked) face's box are blurred too
        assert changed[:, 0].min() <= box[1] - 0.6 * (box[3] - box[1])


def test_an_annotated_video_is_refused_before_it_is_asked_for_or_possible(
    client: TestClient, keys: Keys, footage_job: Job, make_job: Callable[..., Job],
    session: Session, upload_dir: Path,
) -> None:
    """The accepted request needs a broker and a worker: tests/api/test_e2e_observability.py."""
    base = f"/v1/jobs/{footage_job.id}/annotated-video"
    never = client.get(base, headers=bearer(keys.north))
    assert (never.status_code, never.json()["detail"]) == (404, "no annotated video was requested")
    assert client.get(f"{base}.mp4", headers=bearer(keys.north)).status_code == 404
    assert client.post(base, headers=bearer(keys.south)).status_code == 404
    running = make_job(status=JobStatus.RUNNING)
    busy = client.post(f"/v1/jobs/{running.id}/annotated-video", headers=bearer(keys.north))
    assert (busy.status_code, busy.json()["detail"]) == (409, "the job is running")
    footage_job.input_path = str(upload_dir / "deleted.mp4")
    session.commit()
    gone = client.post(base, headers=bearer(keys.north))
    assert (gone.status_code, gone.json()["detail"]) == (
        410, "this job's footage is no longer kept"
    )
