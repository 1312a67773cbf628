"""The pipeline's view of the analysis settings (defined in maskwatch.core.analysis), and the
check that an input can be analysed with them at all."""

from __future__ import annotations

from maskwatch.core.analysis import (
    FAST_DETECTOR_WEIGHTS,
    SHIPPED_DETECTOR_WEIGHTS,
    AnalysisSettings,
    DetectorConfig,
)
from worker.pipeline.decode import MediaInfo, output_size
from worker.pipeline.errors import InputError

__all__ = [
    "FAST_DETECTOR_WEIGHTS",
    "SHIPPED_DETECTOR_WEIGHTS",
    "AnalysisSettings",
    "DetectorConfig",
    "check_analysable",
]


def check_analysable(info: MediaInfo, settings: AnalysisSettings) -> None:
    """Reject inputs the detector cannot work on, before any frame is decoded."""
    width, height = output_size(info, settings.max_frame_side)
    if min(width, height) * settings.upscale < settings.min_face_size:
        raise InputError(
            f"{info.name}: {info.width}x{info.height} px is too small to hold a face "
            f"of the detector's minimum size ({settings.min_face_size} px)"
        )
