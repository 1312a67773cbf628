"""Request and response bodies of the HTTP API (pydantic models, shown in /docs)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from maskwatch.core.analysis import AnalysisSettings
from maskwatch.core.counts import FaceCounts, shown
from storage.models import InputKind, Job, JobStatus
from storage.repositories.reports import Bucket


def iso_utc(value: datetime) -> str:
    """``2024-03-01T09:00:00Z``-style text (microseconds kept when present)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


UTCDateTime = Annotated[datetime, PlainSerializer(iso_utc, return_type=str, when_used="json")]


class ErrorOut(BaseModel):
    """Every error: a message (or, for 422 on parameters, FastAPI's list of problems)."""

    detail: str | list[dict[str, object]]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Progress(_Out):
    frames_done: int
    frames_total: int | None = Field(description="sampled frames expected; None until known")


class FaceCountsOut(_Out):
    """Face counts (maskwatch.core.counts.FaceCounts); compliance_ratio = masked / faces,
    rounded as every report shows it."""

    faces: int
    masked: int
    unmasked: int
    incorrect: int
    compliance_ratio: float | None

    @staticmethod
    def fields_of(counts: FaceCounts) -> dict[str, Any]:
        """The counts this model and its subclasses show, by field name."""
        return {**asdict(counts), "compliance_ratio": shown(counts.compliance_ratio)}


class Summary(FaceCountsOut):
    """Totals over a succeeded job's frames."""

    frames: int
    frames_with_faces: int

    @classmethod
    def of(cls, summary: FaceCounts) -> Summary:
        return cls(**cls.fields_of(summary))


class JobOut(_Out):
    """An analysis job as the API shows it."""

    id: str
    status: JobStatus
    site: str
    camera: str
    input_name: str = Field(description="the uploaded file's name, for display only")
    input_kind: InputKind
    recorded_at: UTCDateTime = Field(description="wall-clock start of the footage")
    created_at: UTCDateTime
    started_at: UTCDateTime | None
    finished_at: UTCDateTime | None
    progress: Progress
    error: str | None = Field(description="why the job failed, when it did")
    summary: Summary | None = Field(description="totals, once the job has succeeded")
    detector_weights: str | None = Field(
        description="the MTCNN weights the job runs with (a.pt+b.pt: two detectors merged; "
        "null: MTCNN's stock weights)"
    )
    mirror_faces: bool = Field(
        description="whether each face is also read in its mirror image (the server's "
        "setting when the job was submitted)"
    )

    @classmethod
    def of(cls, job: Job, summary: FaceCounts | None = None) -> JobOut:
        return cls(
            id=job.id,
            status=job.status,
            site=job.camera.site,
            camera=job.camera.name,
            input_name=job.input_name,
            input_kind=job.input_kind,
            recorded_at=job.recorded_at,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            progress=Progress(frames_done=job.frames_done, frames_total=job.frames_total),
            error=job.error,
            summary=None if summary is None else Summary.of(summary),
            detector_weights=(job.settings or {}).get("detector_weights"),
            mirror_faces=AnalysisSettings.from_dict(job.settings or {}).mirror_faces,
        )


class JobPage(BaseModel):
    items: list[JobOut]
    total: int = Field(description="jobs matching the filters, over all pages")


class FrameOut(_Out):
    """Face counts of one analysed frame; timestamp_s is seconds from the footage start."""

    frame_index: int
    timestamp_s: float
    faces: int
    masked: int
    unmasked: int
    incorrect: int


class FramePage(BaseModel):
    items: list[FrameOut]
    total: int = Field(description="frames the job has, over all pages")


class BucketOut(FaceCountsOut):
    """Totals of the frames captured in [bucket_start, bucket_start + bucket)."""

    bucket_start: UTCDateTime

    @classmethod
    def of(cls, bucket: Bucket) -> BucketOut:
        counts = cls.fields_of(bucket.counts)
        del counts["frames"], counts["frames_with_faces"]  # a bucket counts faces only
        return cls(bucket_start=bucket.start, **counts)


class ReportOut(BaseModel):
    bucket: Literal["minute", "hour", "day"]
    items: list[BucketOut]


class FaceOut(BaseModel):
    """One face: box in the image's pixels (x1, y1, x2, y2), label and score."""

    box: list[float] = Field(min_length=4, max_length=4)
    label: str
    score: float


class ClassifyOut(BaseModel):
    faces: list[FaceOut]


class HealthOut(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
