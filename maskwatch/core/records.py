"""Plain per-frame and per-track results the pipeline builds and storage persists, free of ORM
imports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maskwatch.core.counts import LABEL_COUNTS, FaceCounts


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
    track_key: int | None = None  # the segment's tracker id of this face's track, if any


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameCounts(FaceCounts):
    """The face counts of one analysed frame: the totals type over that frame alone (its
    ``frames`` is 1 and ``frames_with_faces`` 1 when it has a face, whatever is passed), so
    that frames add up to a job's totals. timestamp_s is seconds from the footage start."""

    frame_index: int
    timestamp_s: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "frames", 1)
        object.__setattr__(self, "frames_with_faces", int(self.faces > 0))

    def to_dict(self) -> dict[str, Any]:
        """The frame as the CLI's JSON report lists a worst moment."""
        return {
            "frame_index": self.frame_index,
            "timestamp_s": self.timestamp_s,
            **{name: getattr(self, name) for name in LABEL_COUNTS},
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameRecord(FrameCounts):
    """One analysed frame as the pipeline hands it to storage: its counts and its faces."""

    detections: list[FaceRecord] = field(default_factory=list)
    # "analysed" (detected in full and classified), "tracked" (detected only in regions,
    # the other faces carried) or "carried" (the scene had not changed: the last frame's
    # faces, carried over)
    mode: str = "analysed"


@dataclass(frozen=True, slots=True)
class TrackRecord:
    """One segment's figures for one track (a person's appearance) over its own frames.

    ``segment_track`` is the tracker's id within the segment; ``handoff`` is (frame_index,
    box) of the track at the last warm-up frame before the segment's start, when it was
    seen there, so finalisation can stitch it to the previous segment's track.
    """

    segment_index: int
    segment_track: int
    first_frame_index: int
    first_s: float
    last_frame_index: int
    last_s: float
    seconds_seen: float
    seconds_masked: float
    seconds_unmasked: float
    seconds_incorrect: float
    readings: int
    label: str  # a Label's value: the label held the longest
    box: tuple[float, float, float, float]  # the best-scored face's box, original pixels
    box_score: float
    handoff: tuple[int, tuple[float, float, float, float]] | None = None
