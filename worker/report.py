"""Compliance reports of finished jobs, as plain data for the CLI and the API to render."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from sqlalchemy.orm import Session

from storage.models import Job
from storage.records import REPORT_DIGITS, PeopleCounts, compliance_ratio
from storage.repositories import reports as report_repo
from storage.repositories import tracks as track_repo

MOMENT_GAP_S = 2.0


@dataclass(frozen=True)
class Moment:
    """A frame worth looking at: many faces without a mask."""

    frame_index: int
    timestamp_s: float
    faces: int
    masked: int
    unmasked: int
    incorrect: int


@dataclass(frozen=True)
class Counts:
    frames: int = 0
    frames_with_faces: int = 0
    faces: int = 0
    masked: int = 0
    unmasked: int = 0
    incorrect: int = 0

    @property
    def compliance_ratio(self) -> float | None:
        """Share of faces wearing a mask properly; incorrectly worn counts as not compliant."""
        ratio = compliance_ratio(self.masked, self.faces)
        return None if ratio is None else round(ratio, REPORT_DIGITS)

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "compliance_ratio": self.compliance_ratio}


def people_dict(people: PeopleCounts) -> dict[str, Any]:
    """The per-person figures as the JSON report shows them (ratios rounded like faces')."""

    def shown(ratio: float | None) -> float | None:
        return None if ratio is None else round(ratio, REPORT_DIGITS)

    return {
        "total": people.total,
        "masked": people.masked,
        "unmasked": people.unmasked,
        "incorrect": people.incorrect,
        "compliance_ratio": shown(people.compliance_ratio),
        "ever_unmasked": people.ever_unmasked,
        "seconds_seen": round(people.seconds_seen, 1),
        "seconds_compliance_ratio": shown(people.seconds_compliance_ratio),
    }


@dataclass(frozen=True)
class JobReport:
    job_id: str
    input_name: str
    site: str
    camera: str
    status: str
    error: str | None
    counts: Counts
    worst_moments: list[Moment] = field(default_factory=list)
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
            "people": people_dict(self.people),
            "worst_moments": [asdict(m) for m in self.worst_moments],
            "settings": self.settings,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True)
class Report:
    jobs: list[JobReport]

    @property
    def totals(self) -> Counts:
        total = Counts()
        for job in self.jobs:
            total = total + job.counts
        return total

    @property
    def people(self) -> PeopleCounts:
        total = PeopleCounts()
        for job in self.jobs:
            total = total + job.people
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "totals": {**self.totals.to_dict(), "people": people_dict(self.people)},
            "jobs_succeeded": sum(j.status == "succeeded" for j in self.jobs),
            "jobs_failed": sum(j.status == "failed" for j in self.jobs),
            "jobs": [j.to_dict() for j in self.jobs],
        }


def job_report(session: Session, job: Job, worst: int = 5) -> JobReport:
    summary = report_repo.job_summary(session, job.id)
    counts = Counts(
        frames=summary.frames,
        frames_with_faces=summary.frames_with_faces,
        faces=summary.faces,
        masked=summary.masked,
        unmasked=summary.unmasked,
        incorrect=summary.incorrect,
    )
    moments: list[Moment] = []
    # Neighbouring frames of one bad scene are alike: list moments at least MOMENT_GAP_S apart.
    for f in report_repo.worst_frames(session, job.id, limit=worst * 50):
        if len(moments) == worst or f.unmasked + f.incorrect == 0:
            break
        if all(abs(f.timestamp_s - m.timestamp_s) >= MOMENT_GAP_S for m in moments):
            moments.append(
                Moment(f.frame_index, f.timestamp_s, f.faces, f.masked, f.unmasked, f.incorrect)
            )
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
