"""Frame statistics and detections: uniqueness, idempotent replacement, listing, cascade."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maskwatch.core.records import FaceRecord, FrameRecord
from storage.models import FaceDetection, FrameStat, Job, JobStatus
from storage.repositories.frames import (
    delete_frames_in_range,
    list_detections,
    list_frames,
    replace_frames,
)
from tests.db_support import MakeFrame, MakeJob


def face(label: str = "with_mask", x1: float = 10.0) -> FaceRecord:
    return FaceRecord(x1=x1, y1=20.0, x2=x1 + 50.0, y2=80.0, label=label, score=0.9, face_prob=0.99)


@contextmanager
def inserts_into(session: Session, table: str) -> Iterator[list[bool]]:
    """Record the executemany flag of every INSERT into ``table`` sent to the driver."""
    calls: list[bool] = []

    def before(*args: Any) -> None:
        statement, executemany = args[2], args[5]
        if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()}"):
            calls.append(executemany)

    connection = session.connection()
    event.listen(connection, "before_cursor_execute", before)
    try:
        yield calls
    finally:
        event.remove(connection, "before_cursor_execute", before)


def test_job_and_frame_index_are_unique(make_job: MakeJob, session: Session) -> None:
    job = make_job()
    row = {"job_id": job.id, "frame_index": 3, "timestamp_s": 0.6, "faces": 0}
    row |= {"masked": 0, "unmasked": 0, "incorrect": 0, "captured_at": job.recorded_at}
    session.add(FrameStat(**row))
    session.flush()
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(FrameStat(**row))
        session.flush()


def test_replace_frames_computes_captured_at(
    make_job: MakeJob, frame: MakeFrame, session: Session
) -> None:
    job = make_job(recorded_at=datetime(2024, 3, 1, 9, 59, 59, tzinfo=UTC))
    replace_frames(session, job, [frame(0, timestamp_s=0.0), frame(25, timestamp_s=1.5)])
    frames, total = list_frames(session, job.id)
    assert total == 2
    assert [f.captured_at for f in frames] == [
        datetime(2024, 3, 1, 9, 59, 59, tzinfo=UTC),
        datetime(2024, 3, 1, 10, 0, 0, 500000, tzinfo=UTC),
    ]


def test_replace_frames_twice_keeps_one_row_per_frame_with_new_values(
    make_job: MakeJob, frame: MakeFrame, session: Session
) -> None:
    job = make_job()
    first = [frame(i, masked=1, detections=[face("with_mask")]) for i in range(3)]
    second = [
        frame(i, unmasked=2, detections=[face("without_mask"), face("without_mask", 100.0)])
        for i in range(3)
    ]
    replace_frames(session, job, first)
    replace_frames(session, job, second)
    session.expunge_all()

    frames, total = list_frames(session, job.id)
    assert total == 3
    assert [(f.frame_index, f.faces, f.masked, f.unmasked) for f in frames] == [
        (0, 2, 0, 2),
        (1, 2, 0, 2),
        (2, 2, 0, 2),
    ]
    detections = list_detections(session, job.id)
    assert len(detections) == 6
    assert {d.label for d in detections} == {"without_mask"}


def test_replace_frames_leaves_frames_outside_the_range(
    make_job: MakeJob, frame: MakeFrame, session: Session
) -> None:
    job = make_job()
    replace_frames(session, job, [frame(i, masked=1, detections=[face()]) for i in range(0, 10)])
    replace_frames(session, job, [frame(4, incorrect=1), frame(6, incorrect=1)])
    frames, total = list_frames(session, job.id)
    # Frame 5 lay inside [4, 6] and was not resent, so it is gone.
    assert [f.frame_index for f in frames] == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert total == 9
    assert {f.frame_index: f.incorrect for f in frames}[4] == 1
    assert sorted({d.frame_index for d in list_detections(session, job.id)}) == [
        0, 1, 2, 3, 7, 8, 9,
    ]  # fmt: skip


def test_replace_frames_uses_one_executemany_per_table(
    make_job: MakeJob, frame: MakeFrame, session: Session
) -> None:
    job = make_job()
    records = [frame(i, masked=1, detections=[face(), face(x1=99.0)]) for i in range(50)]
    with (
        inserts_into(session, "frame_stats") as frame_calls,
        inserts_into(session, "face_detections") as detection_calls,
    ):
        replace_frames(session, job, records)
    assert frame_calls == [True]
    assert detection_calls == [True]
    assert session.scalar(select(func.count(FaceDetection.id))) == 100


def test_replace_frames_does_not_touch_other_jobs(
    make_job: MakeJob, frame: MakeFrame, session: Session
) -> None:
    job, other = make_job(), make_job()
    replace_frames(session, other, [frame(1, masked=3)])
    replace_frames(session, job, [frame(1, unmasked=1)])
    replace_frames(session, job, [frame(1, unmasked=2)])
    frames, _ = list_frames(session, other.id)
    assert [(f.frame_index, f.masked) for f in frames] == [(1, 3)]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (
            [
                FrameRecord(frame_index=1, timestamp_s=0.0, faces=1, masked=1),
                FrameRecord(frame_index=1, timestamp_s=0.2),
            ],
            "twice",
        ),
        (
            [
                FrameRecord(
                    frame_index=1, timestamp_s=0.0, faces=1, detections=[face(label="mask")]
                )
            ],
            "unknown label",
        ),
        ([FrameRecord(frame_index=1, timestamp_s=0.0, faces=-1)], "negative"),
    ],
)
def test_replace_frames_rejects_bad_records(
    make_job: MakeJob, session: Session, records: list[FrameRecord], message: str
) -> None:
    job = make_job()
    with pytest.raises(ValueError, match=message):
        replace_frames(session, job, records)
    assert list_frames(session, job.id) == ([], 0)


def test_delete_frames_in_range(make_job: MakeJob, frame: MakeFrame, session: Session) -> None:
    job = make_job()
    replace_frames(session, job, [frame(i, masked=1, detections=[face()]) for i in range(5)])
    assert delete_frames_in_range(session, job.id, 1, 3) == 3
    frames, total = list_frames(session, job.id)
    assert [f.frame_index for f in frames] == [0, 4] and total == 2
    assert [d.frame_index for d in list_detections(session, job.id)] == [0, 4]


def test_list_frames_pages_in_frame_order(
    make_job: MakeJob, frame: MakeFrame, session: Session
) -> None:
    job = make_job()
    replace_frames(session, job, [frame(i) for i in (9, 3, 5, 1, 7)])
    page, total = list_frames(session, job.id, offset=1, limit=3)
    assert total == 5
    assert [f.frame_index for f in page] == [3, 5, 7]


def test_list_detections_of_one_frame(
    make_job: MakeJob, frame: MakeFrame, session: Session
) -> None:
    job = make_job()
    replace_frames(
        session,
        job,
        [
            frame(0, masked=1, detections=[face("with_mask")]),
            frame(1, incorrect=1, detections=[face("incorrect_mask", x1=5.0)]),
        ],
    )
    detections = list_detections(session, job.id, frame_index=1)
    assert [(d.label, d.x1, d.x2) for d in detections] == [("incorrect_mask", 5.0, 55.0)]
    assert detections[0].score == pytest.approx(0.9)
    assert detections[0].face_prob == pytest.approx(0.99)


def test_deleting_a_job_cascades_to_frames_and_detections(
    make_job: MakeJob, frame: MakeFrame, session: Session
) -> None:
    job = make_job(status=JobStatus.SUCCEEDED)
    replace_frames(session, job, [frame(0, masked=1, detections=[face()])])
    session.execute(delete(Job).where(Job.id == job.id))
    assert session.scalar(select(func.count(FrameStat.id))) == 0
    assert session.scalar(select(func.count(FaceDetection.id))) == 0
