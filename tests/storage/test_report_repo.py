"""Reports: job summary arithmetic, worst frames order, compliance time series in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from maskwatch.core.counts import FaceCounts
from maskwatch.core.reports import ReportFilter
from storage.models import Camera, JobStatus
from storage.repositories.cameras import get_or_create_camera
from storage.repositories.frames import replace_frames
from storage.repositories.reports import (
    Bucket,
    compliance_timeseries,
    job_summary,
    worst_frames,
)
from tests.db_support import MakeFrame, MakeJob


def test_job_summary_totals(make_job: MakeJob, frame: MakeFrame, session: Session) -> None:
    job = make_job(status=JobStatus.SUCCEEDED)
    replace_frames(
        session,
        job,
        [
            frame(0, masked=3, unmasked=1),
            frame(1),
            frame(2, masked=2, incorrect=1),
            frame(3, unmasked=2),
        ],
    )
    # faces 4 + 0 + 3 + 2 = 9, masked 3 + 2 = 5.
    summary = job_summary(session, job.id)
    assert summary.compliance_ratio == pytest.approx(5 / 9)
    assert summary == FaceCounts(
        frames=4, frames_with_faces=3, faces=9, masked=5, unmasked=3, incorrect=1
    )


def test_job_summary_without_faces(make_job: MakeJob, frame: MakeFrame, session: Session) -> None:
    job = make_job()
    assert job_summary(session, job.id) == FaceCounts()
    assert job_summary(session, job.id).compliance_ratio is None
    replace_frames(session, job, [frame(0), frame(1)])
    assert job_summary(session, job.id) == FaceCounts(frames=2)


def test_worst_frames_order(make_job: MakeJob, frame: MakeFrame, session: Session) -> None:
    job = make_job()
    replace_frames(
        session,
        job,
        [
            frame(0, masked=5),  # 0 bad
            frame(1, masked=1, unmasked=2),  # 2 bad, 1/3 masked
            frame(2, unmasked=1, incorrect=1),  # 2 bad, 0/2 masked
            frame(3),  # no faces: never listed
            frame(4, masked=2, unmasked=3, incorrect=1),  # 4 bad
            frame(5, unmasked=1, incorrect=1),  # same as frame 2
            frame(6, masked=3, unmasked=1),  # 1 bad
        ],
    )
    assert [f.frame_index for f in worst_frames(session, job.id, limit=10)] == [4, 2, 5, 1, 6, 0]
    assert [f.frame_index for f in worst_frames(session, job.id, limit=2)] == [4, 2]


@pytest.fixture
def footage(session: Session, make_job: MakeJob, frame: MakeFrame) -> dict[str, Camera]:
    """Succeeded footage from two cameras around 10:00 UTC, plus jobs that must not count.

    north/cam-1, recorded from 09:59:30 UTC (given as 11:59:30+02:00):
      t=0s  09:59:30  masked 2, unmasked 1
      t=20s 09:59:50  masked 1, incorrect 1
      t=30s 10:00:00  masked 3
      t=75s 10:00:45  unmasked 2
    south/cam-2, recorded from 10:30:00 UTC: t=0 masked 4, unmasked 4
    Failed and running jobs on north/cam-1 add 100 faces each that must be ignored.
    """
    north = get_or_create_camera(session, "north", "cam-1")
    south = get_or_create_camera(session, "south", "cam-2")
    plus_two = timezone(timedelta(hours=2))
    good = make_job(
        cam=north,
        status=JobStatus.SUCCEEDED,
        recorded_at=datetime(2024, 3, 1, 11, 59, 30, tzinfo=plus_two),
    )
    replace_frames(
        session,
        good,
        [
            frame(0, timestamp_s=0.0, masked=2, unmasked=1),
            frame(1, timestamp_s=20.0, masked=1, incorrect=1),
            frame(2, timestamp_s=30.0, masked=3),
            frame(3, timestamp_s=75.0, unmasked=2),
        ],
    )
    other = make_job(
        cam=south, status=JobStatus.SUCCEEDED, recorded_at=datetime(2024, 3, 1, 10, 30, tzinfo=UTC)
    )
    replace_frames(session, other, [frame(0, masked=4, unmasked=4)])
    for status in (JobStatus.FAILED, JobStatus.RUNNING):
        ignored = make_job(
            cam=north, status=status, recorded_at=datetime(2024, 3, 1, 9, 59, 30, tzinfo=UTC)
        )
        replace_frames(session, ignored, [frame(0, unmasked=100)])
    return {"north": north, "south": south}


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 3, 1, hour, minute, tzinfo=UTC)


def test_hourly_buckets_split_at_the_hour(session: Session, footage: dict[str, Camera]) -> None:
    buckets = compliance_timeseries(session, ReportFilter(site="north"), "hour")
    assert buckets == [
        Bucket(at(9), FaceCounts(faces=5, masked=3, unmasked=1, incorrect=1)),
        Bucket(at(10), FaceCounts(faces=5, masked=3, unmasked=2, incorrect=0)),
    ]
    assert all(b.start.utcoffset() == timedelta(0) for b in buckets)


def test_minute_buckets_across_cameras(session: Session, footage: dict[str, Camera]) -> None:
    buckets = compliance_timeseries(session, ReportFilter(), "minute")
    assert [(b.start, b.counts.faces, b.counts.masked) for b in buckets] == [
        (at(9, 59), 5, 3),
        (at(10, 0), 5, 3),
        (at(10, 30), 8, 4),
    ]
    assert buckets[2].counts.compliance_ratio == pytest.approx(0.5)


def test_day_buckets_are_utc_days_whatever_the_session_time_zone(
    session: Session, footage: dict[str, Camera], dialect: str
) -> None:
    if dialect == "postgresql":
        # 09:59-10:30 UTC is one UTC day but straddles midnight in Auckland (UTC+13).
        session.execute(text("SET LOCAL TIME ZONE 'Pacific/Auckland'"))
    buckets = compliance_timeseries(session, ReportFilter(), "day")
    assert buckets == [
        Bucket(datetime(2024, 3, 1, tzinfo=UTC), FaceCounts(faces=18, masked=10, unmasked=7,
                                                             incorrect=1)),
    ]
    assert buckets[0].counts.compliance_ratio == pytest.approx(10 / 18)


def test_time_range_is_half_open(session: Session, footage: dict[str, Camera]) -> None:
    buckets = compliance_timeseries(
        session,
        ReportFilter(camera="cam-1", start=at(10), end=at(10, 0) + timedelta(seconds=45)),
        "hour",
    )
    # 10:00:00 is included, 10:00:45 is not.
    assert buckets == [Bucket(at(10), FaceCounts(faces=3, masked=3))]


def test_camera_filter(session: Session, footage: dict[str, Camera]) -> None:
    buckets = compliance_timeseries(session, ReportFilter(camera="cam-2"), "hour")
    assert buckets == [Bucket(at(10), FaceCounts(faces=8, masked=4, unmasked=4))]
    assert compliance_timeseries(session, ReportFilter("north", "cam-2"), "hour") == []


def test_sql_looking_filters_match_nothing(session: Session, footage: dict[str, Camera]) -> None:
    assert compliance_timeseries(session, ReportFilter(camera="x' OR 1=1 --"), "hour") == []
    assert compliance_timeseries(session, ReportFilter(site="') OR ('1'='1"), "day") == []


def test_naive_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ReportFilter(start=datetime(2024, 3, 1))


def test_unknown_bucket_is_rejected(session: Session) -> None:
    with pytest.raises(ValueError, match="bucket"):
        compliance_timeseries(session, ReportFilter(), "week")  # type: ignore[arg-type]
