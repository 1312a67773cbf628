"""Plain per-frame results the worker builds and storage persists, free of ORM imports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

FACE_LABELS: Final = frozenset({"with_mask", "without_mask", "incorrect_mask"})
REPORT_DIGITS: Final = 4  # compliance ratios are shown (CLI, API, CSV) to 4 decimal places


def compliance_ratio(masked: int, faces: int) -> float | None:
    """Share of faces wearing a mask properly (an incorrectly worn one is not compliant);
    None when there is no face to judge."""
    return masked / faces if faces else None


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """One classified face; the box is in pixels of the original frame, (x1, y1) top-left."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str  # one of FACE_LABELS
    score: float  # label confidence x face_prob
    face_prob: float


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """Counts and faces for one analysed frame; timestamp_s is seconds from the footage start."""

    frame_index: int
    timestamp_s: float
    faces: int
    masked: int
    unmasked: int
    incorrect: int
    detections: list[FaceRecord] = field(default_factory=list)
