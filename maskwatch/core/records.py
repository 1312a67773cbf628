"""Plain per-frame results the pipeline builds and storage persists, free of ORM imports."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """One classified face; the box is in pixels of the original frame, (x1, y1) top-left."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str  # a Label's value (maskwatch.core.labels)
    score: float  # label confidence x face_prob
    face_prob: float


@dataclass(frozen=True, slots=True)
class FrameCounts:
    """Face counts of one analysed frame; timestamp_s is seconds from the footage start."""

    frame_index: int
    timestamp_s: float
    faces: int
    masked: int
    unmasked: int
    incorrect: int


@dataclass(frozen=True, slots=True)
class FrameRecord(FrameCounts):
    """One analysed frame as the pipeline hands it to storage: its counts and its faces."""

    detections: list[FaceRecord] = field(default_factory=list)
