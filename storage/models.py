"""ORM models: cameras, jobs and their segments, frame statistics, faces, API keys, alerts."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT primary keys do not autoincrement on SQLite; only "INTEGER PRIMARY KEY" does.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def new_job_id() -> str:
    """A random 32-character hex job id."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp, stored and returned in UTC on every backend.

    Naive datetimes are rejected rather than guessed at. SQLite has no timezone type, so
    values are stored there as naive UTC and given ``tzinfo=UTC`` when read back.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JobStatus(enum.StrEnum):
    """Lifecycle of an analysis job."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class InputKind(enum.StrEnum):
    """What an analysis job reads."""

    VIDEO = "video"
    IMAGE = "image"


def _enum_values(enum_class: type[enum.Enum]) -> list[str]:
    return [str(member.value) for member in enum_class]


def _stored_enum(enum_class: type[enum.Enum], name: str, length: int = 16) -> Enum:
    """How every enum column is stored: its members' values in a VARCHAR of ``length`` with a
    CHECK constraint, not a native ENUM type."""
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=_enum_values,
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base with stable constraint names for Alembic."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class Camera(Base):
    """A camera, identified by its name within a site."""

    __tablename__ = "cameras"
    __table_args__ = (UniqueConstraint("site", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """One analysis of one video or image from one camera."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status", "status"),
        Index("ix_jobs_camera_id_created_at", "camera_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"))
    status: Mapped[JobStatus] = mapped_column(
        _stored_enum(JobStatus, "job_status"),
        default=JobStatus.QUEUED,
    )
    input_kind: Mapped[InputKind] = mapped_column(_stored_enum(InputKind, "input_kind"))
    # Where the file lies: a name we chose for uploads, or the user's own path for the CLI.
    input_path: Mapped[str] = mapped_column(String(1024))
    # The name the user gave the file; for display only, never opened.
    input_name: Mapped[str] = mapped_column(String(255))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Wall-clock start of the footage; frame times are recorded_at + timestamp_s.
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    frames_total: Mapped[int | None] = mapped_column(Integer)
    frames_done: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    camera: Mapped[Camera] = relationship(lazy="joined", innerjoin=True)


class FrameStat(Base):
    """Face counts for one analysed frame of a job."""

    __tablename__ = "frame_stats"
    __table_args__ = (
        UniqueConstraint("job_id", "frame_index"),
        Index("ix_frame_stats_captured_at", "captured_at"),
        # A camera's time series and many jobs' totals read only the index on PostgreSQL
        # (scripts/bench_dashboard.py: the dashboard's camera page 5x faster on 2 M rows).
        Index(
            "ix_frame_stats_job_id_captured_at",
            "job_id",
            "captured_at",
            postgresql_include=["faces", "masked", "unmasked", "incorrect"],
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    frame_index: Mapped[int] = mapped_column(Integer)
    timestamp_s: Mapped[float] = mapped_column(Float)
    captured_at: Mapped[datetime] = mapped_column()
    faces: Mapped[int] = mapped_column(Integer)
    masked: Mapped[int] = mapped_column(Integer)
    unmasked: Mapped[int] = mapped_column(Integer)
    incorrect: Mapped[int] = mapped_column(Integer)
    # How the frame's faces were found: "analysed" (in full), "tracked" (detected in regions,
    # the others carried) or "carried" from the last frame because the scene had not
    # changed (worker.pipeline.regions).
    mode: Mapped[str] = mapped_column(String(8), default="analysed", server_default="analysed")


class FaceDetection(Base):
    """One classified face: its box in original-frame pixels and its label; never pixels."""

    __tablename__ = "face_detections"
    __table_args__ = (Index("ix_face_detections_job_id_frame_index", "job_id", "frame_index"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    frame_index: Mapped[int] = mapped_column(Integer)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(20))
    # Label confidence multiplied by the detector's face probability.
    score: Mapped[float] = mapped_column(Float)
    face_prob: Mapped[float] = mapped_column(Float)
    # The track (person) this face belongs to; None for a face no track confirmed.
    track_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("tracks.id", ondelete="SET NULL"),
        index=True,
    )


class ApiKey(Base):
    """An HTTP API key; only the SHA-256 of the key is stored."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("key_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(128))
    # None means the key is not limited to one site.
    site: Mapped[str | None] = mapped_column(String(100))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class SegmentStatus(enum.StrEnum):
    """Lifecycle of one time range of a job processed by a distributed worker."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobSegment(Base):
    """One time range [start_s, end_s) of a job's input, analysed by one task at a time."""

    __tablename__ = "job_segments"
    __table_args__ = (
        UniqueConstraint("job_id", "segment_index"),
        Index("ix_job_segments_status_updated_at", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    segment_index: Mapped[int] = mapped_column(Integer)
    start_s: Mapped[float] = mapped_column(Float)
    # None: to the end of the input (the probed duration is only an estimate).
    end_s: Mapped[float | None] = mapped_column(Float)
    status: Mapped[SegmentStatus] = mapped_column(
        _stored_enum(SegmentStatus, "segment_status"),
        default=SegmentStatus.PENDING,
    )
    # Times a task started on this segment (first run, retries and redeliveries).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    frames_done: Mapped[int] = mapped_column(Integer, default=0)
    # The Celery task id of the current run: a redelivered message keeps it, a duplicate not.
    task_id: Mapped[str | None] = mapped_column(String(64))
    # "<hostname>:<pid>" of the process running it, for operators.
    worker: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Also the heartbeat: written at every stored batch of a running segment.
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AlertKind(enum.StrEnum):
    """What an alert rule watches."""

    COMPLIANCE_BELOW = "compliance_below"  # compliance over a window fell under a threshold
    JOB_FAILED = "job_failed"
    JOB_FINISHED = "job_finished"  # a job succeeded


class DeliveryStatus(enum.StrEnum):
    """Lifecycle of one webhook delivery."""

    PENDING = "pending"  # not yet accepted by the receiver; attempts continue
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # out of attempts, or refused for good (a 4xx)


class AlertRule(Base):
    """A condition on a site's (or one camera's) jobs, and the webhook told when it holds."""

    __tablename__ = "alert_rules"
    __table_args__ = (Index("ix_alert_rules_site_camera", "site", "camera"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(100))
    # None: every camera of the site.
    camera: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[AlertKind] = mapped_column(_stored_enum(AlertKind, "alert_kind", length=32))
    # compliance_below only: fire when masked / faces < threshold over the last window_s.
    threshold: Mapped[float | None] = mapped_column(Float)
    window_s: Mapped[int | None] = mapped_column(Integer)
    # Fewer faces than this in the window say too little to alert on.
    min_faces: Mapped[int] = mapped_column(Integer, default=1)
    # What compliance counts: "face_frames" today; "people" once per-person tracks exist.
    measure: Mapped[str] = mapped_column(String(16), default="face_frames")
    url: Mapped[str] = mapped_column(String(2048))
    # Signs every delivery (HMAC-SHA256); kept in clear since signing needs it.
    secret: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertDelivery(Base):
    """One webhook message for one rule and one job, and how its delivery went."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        # One message per rule and job: evaluating a job twice sends nothing twice.
        UniqueConstraint("rule_id", "job_id"),
        Index("ix_alert_deliveries_status_updated_at", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    # Kept when the job's data is deleted: the log outlives it.
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[DeliveryStatus] = mapped_column(
        _stored_enum(DeliveryStatus, "delivery_status"),
        default=DeliveryStatus.PENDING,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()

    rule: Mapped[AlertRule] = relationship(lazy="joined", innerjoin=True)


class AlertAttempt(Base):
    """One try at delivering a webhook: the receiver's status code, or why there was none."""

    __tablename__ = "alert_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "attempt"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("alert_deliveries.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)


class VideoStatus(enum.StrEnum):
    """Lifecycle of a job's annotated video."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class AnnotatedVideo(Base):
    """A job's footage re-rendered with boxes and labels; the file lives beside the uploads."""

    __tablename__ = "annotated_videos"

    job_id: Mapped[str] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[VideoStatus] = mapped_column(
        _stored_enum(VideoStatus, "video_status"),
        default=VideoStatus.QUEUED,
    )
    blur_faces: Mapped[bool] = mapped_column(Boolean)
    frames: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Track(Base):
    """One appearance of a person in a job: a track of faces over time, with its figures.

    Each segment stores its own tracks (``segment_index``, ``segment_track``); finalising
    the job stitches those that continue over a segment boundary into one and numbers the
    job's tracks from 1 in order of appearance (``track_index``, None until then).
    """

    __tablename__ = "tracks"
    __table_args__ = (
        UniqueConstraint("job_id", "segment_index", "segment_track"),
        Index("ix_tracks_job_id_track_index", "job_id", "track_index"),
        Index("ix_tracks_first_seen_at", "first_seen_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    segment_index: Mapped[int] = mapped_column(Integer)
    segment_track: Mapped[int] = mapped_column(Integer)
    track_index: Mapped[int | None] = mapped_column(Integer)
    first_frame_index: Mapped[int] = mapped_column(Integer)
    last_frame_index: Mapped[int] = mapped_column(Integer)
    first_s: Mapped[float] = mapped_column(Float)
    last_s: Mapped[float] = mapped_column(Float)
    # Wall-clock time of the first frame: the job's recorded_at + first_s (report buckets).
    first_seen_at: Mapped[datetime] = mapped_column()
    seconds_seen: Mapped[float] = mapped_column(Float)
    seconds_masked: Mapped[float] = mapped_column(Float)
    seconds_unmasked: Mapped[float] = mapped_column(Float)
    seconds_incorrect: Mapped[float] = mapped_column(Float)
    # Classifier readings behind the figures: the track's faces detected and classified
    # (faces carried over by sparse detection count for time, not as readings).
    readings: Mapped[int] = mapped_column(Integer)
    # The label held the longest (ties to the least compliant).
    label: Mapped[str] = mapped_column(String(20))
    # The representative box: the best-scored face's, in original-frame pixels.
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    box_score: Mapped[float] = mapped_column(Float)
    # {"frame_index", "box"} at the last warm-up frame before the segment: for stitching.
    handoff: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
