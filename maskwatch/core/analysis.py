"""What changes an analysis' numbers: the settings stored with each job and the detector's
share of them. Their defaults are defined here once; maskwatch.settings derives from them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

MAX_SAMPLE_FPS = 120.0  # frames analysed per second of footage, at most
MAX_AUTO_UPSCALE = 2.0  # frames are never enlarged more than this automatically
# Two MTCNNs, boxes merged (worker/pipeline/detect.py, MergedDetector): our fine-tuned RNet/ONet
# behind the stock PNet, and a second detector tuned for masked faces. "mtcnn_finetuned.pt"
# alone is the fast choice (docs/model-card.md, docs/benchmarks.md).
FAST_DETECTOR_WEIGHTS = "mtcnn_finetuned.pt"
SHIPPED_DETECTOR_WEIGHTS = "mtcnn_finetuned.pt+mtcnn_union.pt"
# Looser thresholds for monochrome frames, chosen on greyscale copies of the training scenes
# (docs/model-card.md, "Monochrome frames").
MONO_THRESHOLDS: tuple[float, float, float] | None = (0.5, 0.6, 0.6)
MONO_FACE_THRESHOLD: float | None = 0.7


@dataclass(frozen=True)
class AnalysisSettings:
    """Everything that changes an analysis' numbers; stored with each job."""

    sample_fps: float = 5.0
    max_frame_side: int = 1280
    min_face_size: int = 20
    detector_thresholds: tuple[float, float, float] = (0.6, 0.8, 0.8)
    face_threshold: float = 0.9
    upscale: float = 1.0
    min_detect_side: int = 600
    detector_weights: str | None = SHIPPED_DETECTOR_WEIGHTS  # None: stock MTCNN weights
    mirror_faces: bool = True  # the classifier also reads each face mirrored and averages
    mono_thresholds: tuple[float, float, float] | None = MONO_THRESHOLDS
    mono_face_threshold: float | None = MONO_FACE_THRESHOLD
    # True: detect and classify every sampled frame (the reference); False: frames whose
    # scene did not change carry the last analysis over (worker.pipeline.gating).
    exhaustive: bool = False

    def __post_init__(self) -> None:
        # Checked where a job's settings are made, so that a bad rate is refused at the
        # door instead of failing the stored job later ("nan" passes most comparisons).
        if not 0 < self.sample_fps <= MAX_SAMPLE_FPS:
            raise ValueError(
                f"sample_fps must be more than 0 and at most {MAX_SAMPLE_FPS:g} frames per "
                f"second, got {self.sample_fps}"
            )

    def detector_config(self) -> DetectorConfig:
        """The detector's share of these settings: every DetectorConfig field has the same
        name here, but ``thresholds`` (``detector_thresholds`` here)."""
        shared = {
            f.name: getattr(self, f.name) for f in fields(DetectorConfig) if f.name != "thresholds"
        }
        return DetectorConfig(thresholds=self.detector_thresholds, **shared)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["detector_thresholds"] = list(self.detector_thresholds)
        if self.mono_thresholds is not None:
            values["mono_thresholds"] = list(self.mono_thresholds)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AnalysisSettings:
        """Settings stored with a job; a key missing from a job stored before that setting
        existed means what such jobs ran with (``LEGACY_DEFAULTS``), not today's default."""
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        for key in ("detector_thresholds", "mono_thresholds"):
            if known.get(key) is not None:
                known[key] = tuple(known[key])
        return cls(**{**LEGACY_DEFAULTS, **known})


# What jobs stored before a setting existed were analysed with.
LEGACY_DEFAULTS: dict[str, Any] = {
    "mirror_faces": False, "mono_thresholds": None, "mono_face_threshold": None,
    "exhaustive": True,
}


@dataclass(frozen=True)
class DetectorConfig:
    """MTCNN settings; see docs/model-card.md for how they were chosen."""

    min_face_size: int = AnalysisSettings.min_face_size
    thresholds: tuple[float, float, float] = AnalysisSettings.detector_thresholds
    face_threshold: float = AnalysisSettings.face_threshold
    upscale: float = AnalysisSettings.upscale
    min_detect_side: int = AnalysisSettings.min_detect_side
    # Fine-tuned PNet/RNet/ONet state dicts (ml/training/detector.py), a file name under
    # worker/models/ or a path; None: the wheel's stock weights.
    detector_weights: str | None = AnalysisSettings.detector_weights
    # Stage and face thresholds for monochrome frames (night/infrared cameras), on which
    # MTCNN's colour-trained stages score faces lower; None: the same as colour frames.
    mono_thresholds: tuple[float, float, float] | None = AnalysisSettings.mono_thresholds
    mono_face_threshold: float | None = AnalysisSettings.mono_face_threshold

    def thresholds_for(self, monochrome: bool) -> tuple[tuple[float, float, float], float]:
        """(stage thresholds, face threshold) for a colour or a monochrome frame."""
        if not monochrome:
            return self.thresholds, self.face_threshold
        return (self.mono_thresholds or self.thresholds,
                self.face_threshold if self.mono_face_threshold is None
                else self.mono_face_threshold)

    def scale_for(self, width: int, height: int) -> float:
        """How much to enlarge a frame before MTCNN.

        Small frames (longer side under ``min_detect_side``) are enlarged up to that size, at
        most 2x: measured on the validation scenes, enlarging beats a smaller min_face_size
        at the same cost (docs/model-card.md). An explicit ``upscale`` above that wins.
        """
        longer = max(width, height)
        auto = min(self.min_detect_side / longer, MAX_AUTO_UPSCALE) if longer else 1.0
        return max(self.upscale, auto, 1.0) if self.min_detect_side else self.upscale
