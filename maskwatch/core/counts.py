"""Face-frame counts (the one type behind job summaries, time buckets, reports, the API and
the CLI) and, beside them, people counts (tracks)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Final

REPORT_DIGITS: Final = 4  # compliance ratios are shown (CLI, API, CSV) to 4 decimal places
# FaceCounts' per-face fields, in the order every report shows them.
LABEL_COUNTS: Final = ("faces", "masked", "unmasked", "incorrect")


def compliance_ratio(masked: int, faces: int) -> float | None:
    """Share of faces wearing a mask properly (an incorrectly worn one is not compliant);
    None when there is no face to judge."""
    return masked / faces if faces else None


def shown(ratio: float | None) -> float | None:
    """A compliance ratio rounded as every report shows it."""
    return None if ratio is None else round(ratio, REPORT_DIGITS)


@dataclass(frozen=True, slots=True)
class FaceCounts:
    """Totals over some analysed frames; each face is counted once per frame it is seen in.

    ``frames`` and ``frames_with_faces`` are 0 where the totals are not per frame (a time
    bucket counts faces only).
    """

    frames: int = 0
    frames_with_faces: int = 0
    faces: int = 0
    masked: int = 0
    unmasked: int = 0
    incorrect: int = 0

    @property
    def compliance_ratio(self) -> float | None:
        """masked / faces, unrounded; None without faces."""
        return compliance_ratio(self.masked, self.faces)

    def __add__(self, other: FaceCounts) -> FaceCounts:
        # fields(FaceCounts), not fields(self): a FrameCounts adds up to plain totals.
        return FaceCounts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(FaceCounts)}
        )

    def to_dict(self) -> dict[str, Any]:
        """The counts and the shown compliance ratio, as the CLI's JSON report has them."""
        return {**asdict(self), "compliance_ratio": shown(self.compliance_ratio)}


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
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def to_dict(self) -> dict[str, Any]:
        """The per-person figures as the CLI's JSON report shows them (ratios rounded like
        faces')."""
        return {
            "total": self.total,
            "masked": self.masked,
            "unmasked": self.unmasked,
            "incorrect": self.incorrect,
            "compliance_ratio": shown(self.compliance_ratio),
            "ever_unmasked": self.ever_unmasked,
            "seconds_seen": round(self.seconds_seen, 1),
            "seconds_compliance_ratio": shown(self.seconds_compliance_ratio),
        }
