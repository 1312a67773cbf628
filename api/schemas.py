"""Request and response bodies of the HTTP API (pydantic models, shown in /docs)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from maskwatch.core.analysis import AnalysisSettings
from maskwatch.core.counts import FaceCounts, PeopleCounts, shown
from maskwatch.core.reports import BucketSize
from storage.models import InputKind, Job, JobStatus, Track
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


class LabelCountsOut(_Out):
    """Faces by label: the per-face fields of maskwatch.core.counts.FaceCounts
    (``LABEL_COUNTS``), shown by every count the API returns."""

    faces: int
    masked: int
    unmasked: int
    incorrect: int


class FaceCountsOut(LabelCountsOut):
    """Face counts (maskwatch.core.counts.FaceCounts); compliance_ratio = masked / faces,
    rounded as every report shows it."""

    compliance_ratio: float | None

    @staticmethod
    def fields_of(counts: FaceCounts) -> dict[str, Any]:
        """The counts this model and its subclasses show, by field name."""
        return {**asdict(counts), "compliance_ratio": shown(counts.compliance_ratio)}


class PeopleCountsOut(_Out):
    """People seen (maskwatch.core.counts.PeopleCounts: one per track, labelled by what they
    wore longest). compliance_ratio = masked / total; seconds_compliance_ratio = person-seconds
    masked / person-seconds seen; ever_unmasked: people seen without a mask at some moment."""

    total: int
    masked: int
    unmasked: int
    incorrect: int
    compliance_ratio: float | None
    ever_unmasked: int
    seconds_compliance_ratio: float | None

    @classmethod
    def of(cls, people: PeopleCounts) -> PeopleCountsOut:
        values = {**asdict(people), "compliance_ratio": shown(people.compliance_ratio),
                  "seconds_compliance_ratio": shown(people.seconds_compliance_ratio)}
        return cls(**{name: values[name] for name in cls.model_fields})


class Summary(FaceCountsOut):
    """Totals over a succeeded job's frames (face-frames: every face of every analysed frame)
    and its people."""

    frames: int
    frames_with_faces: int
    people: PeopleCountsOut | None = None

    @classmethod
    def of(cls, summary: FaceCounts, people: PeopleCounts | None = None) -> Summary:
        return cls(
            **cls.fields_of(summary), people=None if people is None else PeopleCountsOut.of(people)
        )


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
    def of(
        cls, job: Job, summary: FaceCounts | None = None, people: PeopleCounts | None = None
    ) -> JobOut:
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
            summary=None if summary is None else Summary.of(summary, people),
            detector_weights=(job.settings or {}).get("detector_weights"),
            mirror_faces=AnalysisSettings.from_dict(job.settings or {}).mirror_faces,
        )


class JobPage(BaseModel):
    items: list[JobOut]
    total: int = Field(description="jobs matching the filters, over all pages")


class _FrameAt(_Out):
    frame_index: int
    timestamp_s: float


# Fields in reverse MRO order: frame_index, timestamp_s, then the label counts, then mode.
class FrameOut(LabelCountsOut, _FrameAt):
    """Face counts of one sampled frame; timestamp_s is seconds from the footage start.

    mode: "analysed" (detected in full and classified), "tracked" (detected only in the
    regions that changed, the other faces repeated) or "carried" (the
    scene had not changed since it was last detected, the last faces repeated).
    """

    mode: str


class FramePage(BaseModel):
    items: list[FrameOut]
    total: int = Field(description="frames the job has, over all pages")


class TrackOut(BaseModel):
    """One person's appearance: when, how long, what they wore (seconds of each label)."""

    track_id: int = Field(description="the job's track number, from 1 in order of appearance")
    first_frame_index: int
    last_frame_index: int
    first_s: float = Field(description="seconds from the footage start")
    last_s: float
    seconds_seen: float
    seconds_masked: float
    seconds_unmasked: float
    seconds_incorrect: float
    readings: int = Field(description="classifier readings behind the figures")
    label: str = Field(description="the label held the longest")
    box: list[float] = Field(
        min_length=4, max_length=4, description="a representative face box (x1, y1, x2, y2)"
    )

    @classmethod
    def of(cls, track: Track) -> TrackOut:
        return cls(
            track_id=track.track_index or 0,
            first_frame_index=track.first_frame_index,
            last_frame_index=track.last_frame_index,
            first_s=track.first_s,
            last_s=track.last_s,
            seconds_seen=round(track.seconds_seen, 4),
            seconds_masked=round(track.seconds_masked, 4),
            seconds_unmasked=round(track.seconds_unmasked, 4),
            seconds_incorrect=round(track.seconds_incorrect, 4),
            readings=track.readings,
            label=track.label,
            box=[track.x1, track.y1, track.x2, track.y2],
        )


class TrackPage(BaseModel):
    items: list[TrackOut]
    total: int = Field(description="tracks (people) the job has, over all pages")


# The PeopleCountsOut fields a bucket shows as people_<name> (people itself: total).
_FLAT_PEOPLE = ("masked", "unmasked", "incorrect", "compliance_ratio")


class BucketOut(FaceCountsOut):
    """Totals of the frames captured in [bucket_start, bucket_start + bucket) (face-frames),
    and of the people first seen in it (people_*: PeopleCountsOut's fields, flat for CSV)."""

    bucket_start: UTCDateTime
    people: int = 0
    people_masked: int = 0
    people_unmasked: int = 0
    people_incorrect: int = 0
    people_compliance_ratio: float | None = None

    @classmethod
    def of(cls, bucket: Bucket, people: PeopleCounts | None = None) -> BucketOut:
        counts = cls.fields_of(bucket.counts)
        del counts["frames"], counts["frames_with_faces"]  # a bucket counts faces only
        who = PeopleCountsOut.of(people or PeopleCounts())
        flat = {f"people_{name}": getattr(who, name) for name in _FLAT_PEOPLE}
        return cls(bucket_start=bucket.start, **counts, people=who.total, **flat)


class ReportOut(BaseModel):
    bucket: BucketSize
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
