"""One settings object for every surface (CLI, API, worker), read from MASKWATCH_* variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "worker" / "models" / "mask_cnn.pt"


class Settings(BaseSettings):
    """Runtime configuration; every field can be set as MASKWATCH_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="MASKWATCH_", extra="ignore")

    database_url: str = "sqlite:///var/maskwatch.sqlite3"
    broker_url: str = "redis://127.0.0.1:6379/0"
    upload_dir: Path = Path("var/uploads")
    max_upload_bytes: int = 2 * 1024**3

    device: str = Field("auto", description="'auto', 'cpu' or 'cuda[:N]'")
    torch_threads: int = Field(0, description="0 leaves torch's default")
    checkpoint: Path = DEFAULT_CHECKPOINT
    sample_fps: float = 5.0
    min_face_size: int = 20
    detector_thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    face_threshold: float = 0.9
    max_frame_side: int = 1280

    @field_validator("sample_fps")
    @classmethod
    def _positive_fps(cls, value: float) -> float:
        if not 0 < value <= 120:
            raise ValueError("sample_fps must be in (0, 120]")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("database_url must be a sqlite:// or postgresql:// URL")
        return value


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
