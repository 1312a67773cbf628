"""Compliance reports of finished jobs, as plain data for the CLI and the API to render."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from maskwatch.core.counts import FaceCounts, PeopleCounts
from maskwatch.core.records import FrameCounts
from storage.models import Job
from storage.repositories import reports as report_repo
from storage.repositories import tracks as track_repo

MOMENT_GAP_S = 2.0


@dataclass(frozen=True)
class JobReport:
    job_id: str
    input_name: str
    site: str
    camera: str
    status: str
    error: str | None
    counts: FaceCounts
    worst_moments: list[FrameCounts] = field(default_factory=list)  # many faces without a mask
    settings: dict[str, Any] = field(default_factory=dict)
    duration_s: float | None = None
    people: PeopleCounts = PeopleCounts()

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "input": self.input_name,
            "site": self.site,
            "camera": self.camera,
            "status": self.status,
            "error": self.error,
            **self.counts.to_dict(),
            "people": self.people.to_dict(),
            "worst_moments": [m.to_dict() for m in self.worst_moments],
            "settings": self.settings,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True)
class Report:
    jobs: list[JobReport]

    @property
    def totals(self) -> FaceCounts:
        return sum((job.counts for job in self.jobs), FaceCounts())

    @property
    def people(self) -> PeopleCounts:
        return sum((job.people for job in self.jobs), PeopleCounts())

    def to_dict(self) -> dict[str, Any]:
        return {
            "totals": {**self.totals.to_dict(), "people": self.people.to_dict()},
            "jobs_succeeded": sum(j.status == "succeeded" for j in self.jobs),
            "jobs_failed": sum(j.status == "failed" for j in self.jobs),
            "jobs": [j.to_dict() for j in self.jobs],
        }


def job_report(session: Session, job: Job, worst: int = 5) -> JobReport:
    counts = report_repo.job_summary(session, job.id)
    moments: list[FrameCounts] = []
    # Neighbouring frames of one bad scene are alike: list moments at least MOMENT_GAP_S apart.
    for f in report_repo.worst_frames(session, job.id, limit=worst * 50):
        if len(moments) == worst or f.unmasked + f.incorrect == 0:
            break
        if all(abs(f.timestamp_s - m.timestamp_s) >= MOMENT_GAP_S for m in moments):
            moments.append(f)
    duration = None
    if job.started_at is not None and job.finished_at is not None:
        duration = round((job.finished_at - job.started_at).total_seconds(), 3)
    return JobReport(
        job_id=job.id,
        input_name=job.input_name,
        site=job.camera.site,
        camera=job.camera.name,
        status=job.status.value,
        error=job.error,
        counts=counts,
        worst_moments=moments,
        settings=dict(job.settings or {}),
        duration_s=duration,
        people=track_repo.people_summary(session, job.id),
    )


def build_report(session: Session, jobs: Sequence[Job], worst: int = 5) -> Report:
    return Report([job_report(session, job, worst) for job in jobs])
