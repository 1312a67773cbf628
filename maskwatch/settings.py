"""One settings object for every surface (CLI, API, worker), read from MASKWATCH_* variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from maskwatch.core.analysis import FAST_DETECTOR_WEIGHTS, MAX_SAMPLE_FPS, AnalysisSettings

NULLS = ("null", "none", "")  # what turns an optional setting off in the environment
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "worker" / "models" / "mask_cnn.pt"
# The analysis settings' defaults live in AnalysisSettings; the fields below take them from it.
ANALYSIS = AnalysisSettings()
# Settings field for an AnalysisSettings field, where the two names differ.
SETTING_FOR_ANALYSIS = {"mono_thresholds": "mono_detector_thresholds"}


class Settings(BaseSettings):
    """Runtime configuration; every field can be set as MASKWATCH_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_", extra="ignore")

    database_url: str = "sqlite:///var/maskwatch.sqlite3"
    broker_url: str = "redis://127.0.0.1:6379/0"
    upload_dir: Path = Path("var/uploads")
    max_upload_bytes: int = 2 * 1024**3

    # HTTP API (`maskwatch serve`) and its clients (`maskwatch submit`, `maskwatch jobs`).
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_url: str | None = Field(
        None, description="where the CLI clients (maskwatch.client) send requests; default: "
        "http://API_HOST:API_PORT, where `maskwatch serve` listens by the same settings",
    )
    api_key: SecretStr | None = Field(None, description="key the CLI clients send; never logged")
    blur_faces: bool = Field(
        True, description="evidence stills the API renders blur every face (boxes and labels "
        "kept); false shows faces as filmed",
    )
    max_classify_bytes: int = Field(
        20 * 1024**2, description="largest image POST /v1/classify takes"
    )

    device: str = Field("auto", description="'auto', 'cpu' or 'cuda[:N]'")
    torch_threads: int = Field(0, description="0 leaves torch's default")
    checkpoint: Path = DEFAULT_CHECKPOINT
    mirror_faces: bool = Field(
        ANALYSIS.mirror_faces,
        description="classify each face and its mirror image and average the two "
        "(more accurate; off: about half the classifier's cost)",
    )
    sample_fps: float = ANALYSIS.sample_fps
    min_face_size: int = ANALYSIS.min_face_size
    detector_thresholds: tuple[float, float, float] = ANALYSIS.detector_thresholds
    face_threshold: float = ANALYSIS.face_threshold
    mono_detector_thresholds: Annotated[tuple[float, float, float] | None, NoDecode] = Field(
        ANALYSIS.mono_thresholds,
        description="MTCNN stage thresholds for monochrome (night/infrared) "
        "frames, e.g. 0.5,0.6,0.6; null: as for colour frames",
    )
    mono_face_threshold: float | None = Field(
        ANALYSIS.mono_face_threshold, ge=0.0, le=1.0,
        description="face threshold for monochrome frames; null: as for colour frames",
    )
    detector_weights: str | None = Field(
        ANALYSIS.detector_weights,
        description="fine-tuned MTCNN (PNet/RNet/ONet) file (in worker/models/); "
        "a.pt+b.pt runs two detectors and merges their boxes (the default); "
        f"{FAST_DETECTOR_WEIGHTS} alone is faster and less accurate; "
        "empty for MTCNN's stock weights",
    )
    upscale: float = Field(ANALYSIS.upscale, ge=0.25, le=4.0)
    min_detect_side: int = Field(
        ANALYSIS.min_detect_side, ge=0, description="smaller frames are enlarged to this"
    )
    max_frame_side: int = ANALYSIS.max_frame_side

    # Distributed workers (`maskwatch worker`); see docs/deployment.md.
    segment_seconds: float = Field(30.0, gt=0, description="length of the parts a job splits into")
    task_time_limit_s: int = Field(1800, gt=0, description="soft time limit of one task")
    visibility_timeout_s: int = Field(
        3600, gt=0, description="Redis redelivers an unacknowledged task after this long"
    )
    stale_after_s: int = Field(
        900, gt=0, description="a running segment silent this long may be taken over"
    )
    recovery_interval_s: float = Field(
        60.0, gt=0, description="how often each worker looks for lost or stalled work"
    )
    segment_max_attempts: int = Field(
        5, ge=1, description="starts of one segment before its job is failed"
    )
    segment_batch_frames: int = Field(
        25, ge=1, description="frames stored per commit; also the cancel and heartbeat step"
    )
    # What one upload may cost; see docs/deployment.md, "Limits".
    max_job_duration_s: float = Field(
        86_400.0, gt=0, description="most footage one job may analyse, counted from the "
        "frames it holds (gaps between timestamps are free), at its sample rate",
    )
    max_job_segments: int = Field(
        5000, ge=1, description="most segments one job may split into (messages, rows)"
    )
    fair_share: bool = Field(
        True, description="a site's segments wait behind other sites' by its backlog; "
        "false: one first-come-first-served queue",
    )
    upload_retention_days: float | None = Field(
        None, gt=0, description="delete the uploads of jobs finished this many days ago "
        "(their statistics stay); null keeps them for ever",
    )
    retention_interval_s: float = Field(
        3600.0, gt=0, description="how often the workers apply upload_retention_days"
    )

    worker_metrics_port: int = Field(
        9540, ge=0, le=65535,
        description="port of a worker's Prometheus exporter (`maskwatch worker`); 0: none",
    )
    worker_metrics_dir: Path | None = Field(
        None, description="where pool processes write metric files; default: a temporary "
        "directory per worker",
    )

    # Alert webhooks (worker/alerts.py), delivered by the workers from the "alerts" queue.
    alert_max_attempts: int = Field(6, ge=1, le=20, description="tries of one webhook delivery")
    alert_retry_base_s: float = Field(
        10.0, gt=0, description="wait before the first retry; doubled after each (1 h at most)"
    )
    alert_timeout_s: float = Field(10.0, gt=0, description="time a receiver has to answer")
    alert_private_targets: bool = Field(
        False, description="allow webhooks to loopback, private and link-local addresses "
        "(off: a rule cannot make the workers call services inside their own network)",
    )

    @field_validator("upload_retention_days", mode="before")
    @classmethod
    def _null_days(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in NULLS:
            return None
        return value

    def analysis(self, **overrides: object) -> AnalysisSettings:
        """The analysis settings these settings give, with ``overrides`` (None: not
        overridden); a field these settings do not expose keeps its default."""
        values: dict[str, object] = {}
        for name in AnalysisSettings.__dataclass_fields__:
            setting = SETTING_FOR_ANALYSIS.get(name, name)
            if setting in type(self).model_fields:
                value = getattr(self, setting)
                values[name] = tuple(value) if isinstance(value, list | tuple) else value
        values["detector_weights"] = values.get("detector_weights") or None  # "": stock MTCNN
        values.update({k: v for k, v in overrides.items() if v is not None})
        return AnalysisSettings(**values)  # type: ignore[arg-type]

    @field_validator("mono_face_threshold", "mono_detector_thresholds", mode="before")
    @classmethod
    def _null_or_list(cls, value: object) -> object:
        """From the environment: null/none/empty -> None; '0.5,0.6,0.6' or '[0.5,0.6,0.6]'."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.lower() in NULLS:
            return None
        if "," in text:
            return tuple(part.strip() for part in text.strip("[]()").split(","))
        return text

    @field_validator("mono_detector_thresholds")
    @classmethod
    def _probabilities(
        cls, value: tuple[float, float, float] | None
    ) -> tuple[float, float, float] | None:
        if value is not None and not all(0 < v <= 1 for v in value):
            raise ValueError("thresholds must be in (0, 1], e.g. [0.5,0.6,0.6]")
        return value

    @field_validator("sample_fps")
    @classmethod
    def _positive_fps(cls, value: float) -> float:
        if not 0 < value <= MAX_SAMPLE_FPS:
            raise ValueError(f"sample_fps must be in (0, {MAX_SAMPLE_FPS:g}]")
        return value

    @field_validator("max_upload_bytes", "max_classify_bytes")
    @classmethod
    def _positive_size(cls, value: int) -> int:
        if value < 1:
            raise ValueError("upload limits must be at least 1 byte")
        return value

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("api_url must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("database_url must be a sqlite:// or postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _timeouts_nest(self) -> Settings:
        # A task must end (hard limit = soft + 60 s) before Redis hands its message to another
        # worker, or a slow but live segment would run twice at once.
        if self.visibility_timeout_s <= self.task_time_limit_s + 60:
            raise ValueError("visibility_timeout_s must exceed task_time_limit_s + 60")
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
