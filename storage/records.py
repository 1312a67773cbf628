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
    track_key: int | None = None  # the segment's tracker id of this face's track, if any


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
    # "analysed" (detected and classified) or "carried" (the scene had not changed: the
    # last analysed frame's faces, carried over)
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
    label: str  # one of FACE_LABELS: the label held the longest
    box: tuple[float, float, float, float]  # the best-scored face's box, original pixels
    box_score: float
    handoff: tuple[int, tuple[float, float, float, float]] | None = None


@dataclass(frozen=True, slots=True)
class PeopleCounts:
    """Per-person figures of a set of tracks, beside the face-frame counts.

    A person is one track (one appearance); their label is the one held the longest.
    """

    total: int = 0
    masked: int = 0
    unmasked: int = 0
    incorrect: int = 0
    ever_unmasked: int = 0  # people seen without a mask at some moment
    seconds_seen: float = 0.0
    seconds_masked: float = 0.0

    @property
    def compliance_ratio(self) -> float | None:
        """Share of people wearing a mask properly (by their longest-held label)."""
        return compliance_ratio(self.masked, self.total)

    @property
    def seconds_compliance_ratio(self) -> float | None:
        """Share of person-seconds spent wearing a mask properly."""
        return self.seconds_masked / self.seconds_seen if self.seconds_seen > 0 else None

    def __add__(self, other: PeopleCounts) -> PeopleCounts:
        return PeopleCounts(
            total=self.total + other.total,
            masked=self.masked + other.masked,
            unmasked=self.unmasked + other.unmasked,
            incorrect=self.incorrect + other.incorrect,
            ever_unmasked=self.ever_unmasked + other.ever_unmasked,
            seconds_seen=self.seconds_seen + other.seconds_seen,
            seconds_masked=self.seconds_masked + other.seconds_masked,
        )
