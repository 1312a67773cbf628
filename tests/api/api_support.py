"""Helpers the API tests share: fakes, keys, frames, raw multipart bodies, files left."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from maskwatch.core.labels import MASK_LABELS
from maskwatch.core.records import FaceRecord, FrameRecord, TrackRecord
from storage.models import Job, JobStatus
from storage.repositories import jobs as job_repo
from tests.db_support import BACKENDS, postgres_database  # noqa: F401 (re-exported to the api tests)
from worker.pipeline.analyze import Models
from worker.pipeline.types import Detections, FaceLabels

POSTGRES_DATABASE = "maskwatch_api_test"


@dataclass(frozen=True)
class Keys:
    admin: str
    all_sites: str
    north: str  # limited to site "north"
    south: str  # limited to site "south"
    revoked: str


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def frame(
    index: int, timestamp_s: float, masked: int, unmasked: int, incorrect: int = 0
) -> FrameRecord:
    faces = [
        FaceRecord(10, 10, 50, 50, label, 0.9, 0.95)
        for label, count in (
            ("with_mask", masked),
            ("without_mask", unmasked),
            ("incorrect_mask", incorrect),
        )
        for _ in range(count)
    ]
    return FrameRecord(
        frame_index=index,
        timestamp_s=timestamp_s,
        faces=masked + unmasked + incorrect,
        masked=masked,
        unmasked=unmasked,
        incorrect=incorrect,
        detections=faces,
    )


def job_rows(client: TestClient, key: str, job_id: str, rows: str, **params: int) -> Any:
    """A page of the job's ``rows`` (frames or tracks) as ``key`` gets it, checked to be a 200."""
    response = client.get(f"/v1/jobs/{job_id}/{rows}", params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


def count_jobs(session: Session) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count(Job.id))) or 0)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def multipart_body(
    fields: dict[str, str], filename: bytes | None, content: bytes, field_name: bytes = b"file"
) -> tuple[bytes, str]:
    """A multipart/form-data body built byte by byte (for names no client library would send)."""
    boundary = b"mwtestboundary7d1f"
    body = bytearray()
    for name, value in fields.items():
        body += b"--%s\r\n" % boundary
        body += b'Content-Disposition: form-data; name="%s"\r\n\r\n' % name.encode()
        body += value.encode() + b"\r\n"
    if filename is not None:
        body += b"--%s\r\n" % boundary
        body += b'Content-Disposition: form-data; name="%s"; filename="%s"\r\n' % (
            field_name,
            filename,
        )
        body += b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n"
    body += b"--%s--\r\n" % boundary
    return bytes(body), f"multipart/form-data; boundary={boundary.decode()}"


@dataclass
class Queue:
    """Records enqueue_job calls instead of talking to a broker."""

    session_factory: sessionmaker[Session]
    enqueued: list[str] = field(default_factory=list)
    status_at_enqueue: list[JobStatus | None] = field(default_factory=list)
    fail: bool = False
    on_enqueue: Callable[[str], None] | None = None

    def enqueue(self, job_id: str) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        # What a worker would see: the job must already be committed and queued.
        with self.session_factory() as session:
            job = job_repo.get_job(session, job_id)
            self.status_at_enqueue.append(None if job is None else job.status)
        self.enqueued.append(job_id)
        if self.on_enqueue is not None:
            self.on_enqueue(job_id)


class FakeDetector:
    """One face box in the middle of every frame."""

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for frame in frames:
            h, w = frame.shape[:2]
            out.append(
                Detections(
                    xyxy=np.array([[w * 0.25, h * 0.25, w * 0.75, h * 0.75]], np.float32),
                    confidence=np.array([0.99], np.float32),
                    landmarks=np.zeros((1, 5, 2), np.float32),
                )
            )
        return out


class FakeClassifier:
    """Every face: with_mask at 0.8."""

    class_names: tuple[str, ...] = MASK_LABELS

    def classify(self, frame: np.ndarray, xyxy: np.ndarray) -> FaceLabels:
        probabilities = np.tile(np.array([[0.8, 0.15, 0.05]], np.float32), (len(xyxy), 1))
        return FaceLabels(class_names=MASK_LABELS, probabilities=probabilities)


@dataclass
class ModelLoader:
    loads: int = 0

    def __call__(self) -> Models:
        self.loads += 1
        return Models(FakeDetector(), FakeClassifier(), torch.device("cpu"))


def person(key: int, first_s: float, label: str, seconds: float = 2.0) -> TrackRecord:
    """A track (one person) first seen at ``first_s``, ``seconds`` long, wearing ``label``."""
    per_label = {name: seconds if name == label else 0.0 for name in MASK_LABELS}
    first = round(first_s * 5)
    return TrackRecord(
        segment_index=0,
        segment_track=key,
        first_frame_index=first,
        first_s=first_s,
        last_frame_index=first + round(seconds * 5) - 1,
        last_s=first_s + seconds - 0.2,
        seconds_seen=seconds,
        seconds_masked=per_label["with_mask"],
        seconds_unmasked=per_label["without_mask"],
        seconds_incorrect=per_label["incorrect_mask"],
        readings=round(seconds * 5),
        label=label,
        box=(10.0, 10.0, 50.0, 50.0),
        box_score=0.9,
    )
