"""What the dashboard shows that the reports do not: cameras with their latest job, timelines."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from maskwatch.core.counts import FaceCounts, PeopleCounts
from storage.models import Camera, FrameStat, Job, JobStatus
from storage.repositories import tracks as track_repo


@dataclass(frozen=True, slots=True)
class CameraOverview:
    """A camera, how many jobs it has, and the totals of its latest succeeded job: its
    face-frames (``latest``) and its people (``latest_people``, its tracks)."""

    site: str
    camera: str
    jobs: int
    latest_job_id: str | None
    latest_recorded_at: datetime | None
    latest: FaceCounts | None
    latest_people: PeopleCounts | None = None


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    """Faces of a job's frames in [start_s, start_s + width) of its footage (``counts``:
    faces and masked only)."""

    start_s: float
    counts: FaceCounts


def camera_overview(session: Session, site: str | None = None) -> list[CameraOverview]:
    """Every camera (of ``site`` when given), by site and name, with its latest succeeded job.

    "Latest" is the job whose footage was recorded last.
    """
    cameras = session.execute(
        select(Camera.id, Camera.site, Camera.name, func.count(Job.id))
        .outerjoin(Job, Job.camera_id == Camera.id)
        .where(*([Camera.site == site] if site is not None else []))
        .group_by(Camera.id, Camera.site, Camera.name)
        .order_by(Camera.site, Camera.name)
    ).all()
    ranked = (
        select(
            Job.camera_id,
            Job.id,
            Job.recorded_at,
            func.row_number()
            .over(partition_by=Job.camera_id, order_by=(Job.recorded_at.desc(), Job.id))
            .label("rank"),
        )
        .where(Job.status == JobStatus.SUCCEEDED)
        .subquery()
    )
    latest = {
        camera_id: (job_id, recorded_at)
        for camera_id, job_id, recorded_at in session.execute(
            select(ranked.c.camera_id, ranked.c.id, ranked.c.recorded_at).where(ranked.c.rank == 1)
        )
    }
    latest_ids = [job_id for job_id, _ in latest.values()]
    totals = job_summaries(session, latest_ids)
    people = track_repo.people_summaries(session, latest_ids)
    overview = []
    for camera_id, camera_site, name, jobs in cameras:
        job_id, recorded_at = latest.get(camera_id, (None, None))
        overview.append(
            CameraOverview(
                site=camera_site,
                camera=name,
                jobs=int(jobs),
                latest_job_id=job_id,
                latest_recorded_at=recorded_at,
                latest=None if job_id is None else totals.get(job_id),
                latest_people=None if job_id is None else people.get(job_id, PeopleCounts()),
            )
        )
    return overview


def job_summaries(session: Session, job_ids: Collection[str]) -> dict[str, FaceCounts]:
    """``report_repo.job_summary`` of many jobs in one query; jobs without frames are absent."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(
            FrameStat.job_id,
            func.count(),  # not count(id): the covering index then answers without the table
            func.sum(case((FrameStat.faces > 0, 1), else_=0)),
            func.sum(FrameStat.faces),
            func.sum(FrameStat.masked),
            func.sum(FrameStat.unmasked),
            func.sum(FrameStat.incorrect),
        )
        .where(FrameStat.job_id.in_(list(job_ids)))
        .group_by(FrameStat.job_id)
    )
    return {
        job_id: FaceCounts(
            frames=int(frames),
            frames_with_faces=int(with_faces),
            faces=int(faces),
            masked=int(masked),
            unmasked=int(unmasked),
            incorrect=int(incorrect),
        )
        for job_id, frames, with_faces, faces, masked, unmasked, incorrect in rows
    }


def last_capture(session: Session, site: str, camera: str) -> datetime | None:
    """When the last frame of the camera's latest succeeded job (by recording time) was
    captured: the end of its newest footage.

    Read from that one job's frames (an index lookup), not from every frame of the camera,
    which over a year of footage is a scan of half a million rows.
    """
    latest_job = (
        select(Job.id)
        .join(Camera, Camera.id == Job.camera_id)
        .where(Job.status == JobStatus.SUCCEEDED, Camera.site == site, Camera.name == camera)
        .order_by(Job.recorded_at.desc(), Job.id)
        .limit(1)
        .scalar_subquery()
    )
    return session.scalar(
        select(func.max(FrameStat.captured_at)).where(FrameStat.job_id == latest_job)
    )


def job_timeline(session: Session, job_id: str, points: int = 200) -> list[TimelinePoint]:
    """The job's frames in at most ``points`` equal slices of its footage time, in order.

    Slices without frames are left out. Binned here rather than in SQL: one job's frames
    are few enough (an hour at 5 fps is 18 000 rows), and SQLite has no floor().
    """
    rows = session.execute(
        select(FrameStat.timestamp_s, FrameStat.faces, FrameStat.masked)
        .where(FrameStat.job_id == job_id)
        .order_by(FrameStat.frame_index)
    ).all()
    if not rows:
        return []
    span = max(row[0] for row in rows)
    width = max(span / points, 1e-9) if span > 0 else 1.0
    bins: dict[int, list[int]] = {}
    for timestamp_s, faces, masked in rows:
        index = min(int(timestamp_s / width), points - 1)
        totals = bins.setdefault(index, [0, 0])
        totals[0] += faces
        totals[1] += masked
    return [
        TimelinePoint(round(index * width, 3), FaceCounts(faces=faces, masked=masked))
        for index, (faces, masked) in sorted(bins.items())
    ]


def frame_of(session: Session, job_id: str, frame_index: int) -> FrameStat | None:
    """The job's analysed frame with this index, if any."""
    return session.scalars(
        select(FrameStat).where(FrameStat.job_id == job_id, FrameStat.frame_index == frame_index)
    ).first()
