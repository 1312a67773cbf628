"""Analysis settings, kept free of torch so that surfaces can import them cheaply."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from worker.pipeline.decode import MediaInfo, output_size
from worker.pipeline.errors import InputError


@dataclass(frozen=True)
class DetectorConfig:
    """MTCNN settings; see docs/model-card.md for how they were chosen."""

    min_face_size: int = 20
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    face_threshold: float = 0.9
    upscale: float = 1.0


@dataclass(frozen=True)
class AnalysisSettings:
    """Everything that changes an analysis' numbers; stored with each job."""

    sample_fps: float = 5.0
    max_frame_side: int = 1280
    min_face_size: int = 20
    detector_thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    face_threshold: float = 0.9
    upscale: float = 1.0

    def detector_config(self) -> DetectorConfig:
        return DetectorConfig(
            min_face_size=self.min_face_size,
            thresholds=self.detector_thresholds,
            face_threshold=self.face_threshold,
            upscale=self.upscale,
        )

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["detector_thresholds"] = list(self.detector_thresholds)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AnalysisSettings:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        if "detector_thresholds" in known:
            known["detector_thresholds"] = tuple(known["detector_thresholds"])
        return cls(**known)


def check_analysable(info: MediaInfo, settings: AnalysisSettings) -> None:
    """Reject inputs the detector cannot work on, before any frame is decoded."""
    width, height = output_size(info, settings.max_frame_side)
    if min(width, height) * settings.upscale < settings.min_face_size:
        raise InputError(
            f"{info.path.name}: {info.width}x{info.height} px is too small to hold a face "
            f"of the detector's minimum size ({settings.min_face_size} px)"
        )
