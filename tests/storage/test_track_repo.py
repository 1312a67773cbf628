"""Tracks: saving a segment's pieces, faces referencing them, stitching, people counts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from maskwatch.core.counts import PeopleCounts
from maskwatch.core.records import FaceRecord, FrameRecord, TrackRecord
from storage.models import FaceDetection, Job, JobStatus, Track
from storage.repositories.frames import replace_frames
from storage.repositories.tracks import (
    delete_segment_tracks,
    list_tracks,
    people_summary,
    save_tracks,
)
from worker.people import finalise_tracks

MakeJob = Callable[..., Job]
Box = tuple[float, float, float, float]
LEFT: Box = (10.0, 20.0, 60.0, 80.0)
RIGHT: Box = (300.0, 20.0, 350.0, 80.0)
NEWCOMER: Box = (150.0, 200.0, 200.0, 260.0)


def track(
    segment: int,
    key: int,
    first: int,
    last: int,
    *,
    label: str = "with_mask",
    masked: float | None = None,
    unmasked: float = 0.0,
    box: Box = LEFT,
    handoff: tuple[int, Box] | None = None,
) -> TrackRecord:
    seen = (last - first + 1) * 0.2
    return TrackRecord(
        segment_index=segment,
        segment_track=key,
        first_frame_index=first,
        first_s=first * 0.1,
        last_frame_index=last,
        last_s=last * 0.1,
        seconds_seen=seen,
        seconds_masked=seen - unmasked if masked is None else masked,
        seconds_unmasked=unmasked,
        seconds_incorrect=0.0,
        readings=(last - first) // 2 + 1,
        label=label,
        box=box,
        box_score=0.9,
        handoff=handoff,
    )


def frames(first: int, last: int, faces: dict[int, Box]) -> list[FrameRecord]:
    """Frames first..last (every 2nd source frame); a face per track key at its box."""
    out = []
    for index in range(first, last + 1, 2):
        detections = [
            FaceRecord(*box, label="with_mask", score=0.9, face_prob=0.99, track_key=key)
            for key, box in faces.items()
        ]
        out.append(
            FrameRecord(
                frame_index=index,
                timestamp_s=index * 0.1,
                faces=len(detections),
                masked=len(detections),
                detections=detections,
            )
        )
    return out


def store(session: Session, job: Job, records: list[TrackRecord], rows: list[FrameRecord]) -> None:
    ids = save_tracks(session, job, records, {})
    replace_frames(session, job, rows, ids)


def test_faces_reference_their_track_and_a_rerun_replaces_the_segment(
    session: Session, make_job: MakeJob
) -> None:
    job = make_job(status=JobStatus.RUNNING)
    ids = save_tracks(session, job, [track(0, 7, 0, 8)], {})
    # a later batch updates the same track in place
    again = save_tracks(session, job, [track(0, 7, 0, 18)], ids)
    assert again == ids
    replace_frames(session, job, frames(0, 18, {7: LEFT}), ids)
    (stored,) = session.scalars(select(Track).where(Track.job_id == job.id)).all()
    assert (stored.last_frame_index, stored.first_seen_at) == (
        18,
        job.recorded_at + timedelta(seconds=0),
    )
    faces = session.scalars(select(FaceDetection).where(FaceDetection.job_id == job.id)).all()
    assert {f.track_id for f in faces} == {stored.id}

    delete_segment_tracks(session, job.id, 0)
    session.expire_all()
    faces = session.scalars(select(FaceDetection).where(FaceDetection.job_id == job.id)).all()
    assert len(faces) == 10 and {f.track_id for f in faces} == {None}


def test_unknown_track_label_is_refused(session: Session, make_job: MakeJob) -> None:
    job = make_job(status=JobStatus.RUNNING)
    with pytest.raises(ValueError, match="unknown label"):
        save_tracks(session, job, [track(0, 1, 0, 4, label="hat")], {})


def test_finalising_stitches_pieces_over_a_boundary_and_numbers_people(
    session: Session, make_job: MakeJob
) -> None:
    job = make_job(status=JobStatus.RUNNING)
    # segment 0 holds frames 0..98: A on the left all along, B on the right from frame 40
    store(
        session,
        job,
        [
            track(0, 1, 0, 98),
            track(0, 2, 40, 98, box=RIGHT, label="without_mask", masked=0.0, unmasked=6.0),
        ],
        frames(0, 38, {1: LEFT}) + frames(40, 98, {1: LEFT, 2: RIGHT}),
    )
    # segment 1 from frame 100 saw both in its warm-up (last warm-up frame 98)...
    store(
        session,
        job,
        [
            track(1, 4, 100, 140, handoff=(98, LEFT)),
            track(1, 5, 100, 120, box=RIGHT, masked=4.2, handoff=(98, RIGHT)),
            # ... and a newcomer who arrives later
            track(1, 6, 130, 140, box=NEWCOMER, label="without_mask", masked=0.0, unmasked=1.2),
        ],
        frames(100, 120, {4: LEFT, 5: RIGHT}) + frames(122, 140, {4: LEFT}),
    )
    assert finalise_tracks(session, job) == 3
    tracks, total = list_tracks(session, job.id)
    assert total == 3
    assert [(t.track_index, t.first_frame_index, t.last_frame_index) for t in tracks] == [
        (1, 0, 140),
        (2, 40, 120),
        (3, 130, 140),
    ]
    right = tracks[1]
    # 6.0 s unmasked before the boundary, 4.2 s masked after: still unmasked the longest
    assert (right.seconds_unmasked, right.seconds_masked, right.label) == (
        pytest.approx(6.0),
        pytest.approx(4.2),
        "without_mask",
    )
    assert all(t.handoff is None for t in tracks)
    faces = session.scalars(select(FaceDetection).where(FaceDetection.job_id == job.id)).all()
    assert {f.track_id for f in faces if f.x1 == RIGHT[0]} == {right.id}
    assert people_summary(session, job.id) == PeopleCounts(
        total=3,
        masked=1,
        unmasked=2,
        incorrect=0,
        ever_unmasked=2,
        seconds_seen=pytest.approx(sum(t.seconds_seen for t in tracks), abs=1e-3),
        seconds_masked=pytest.approx(tracks[0].seconds_masked + 4.2, abs=1e-3),
    )

    page, total = list_tracks(session, job.id, offset=1, limit=1)
    assert total == 3 and [t.track_index for t in page] == [2]


def test_deleting_a_job_deletes_its_tracks(session: Session, make_job: MakeJob) -> None:
    job = make_job(status=JobStatus.RUNNING)
    store(session, job, [track(0, 1, 0, 8)], frames(0, 8, {1: LEFT}))
    session.delete(job)
    session.flush()
    assert session.scalars(select(Track)).all() == []


def test_people_summary_of_a_job_without_tracks(session: Session, make_job: MakeJob) -> None:
    job = make_job(recorded_at=datetime(2024, 1, 1, tzinfo=UTC))
    assert people_summary(session, job.id) == PeopleCounts()
    assert PeopleCounts().compliance_ratio is None
