"""What a report over time counts: which footage (``ReportFilter``) and in what buckets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, get_args

BucketSize = Literal["minute", "hour", "day"]
BUCKET_SIZES: Final[tuple[str, ...]] = get_args(BucketSize)


@dataclass(frozen=True, slots=True)
class ReportFilter:
    """The footage a report over time counts: succeeded jobs' frames (or people) at ``site``
    and ``camera`` (None: any), at moments in [``start``, ``end``) (None: unbounded).

    ``end_inclusive`` makes it [``start``, ``end``]: an alert window ends at the last capture
    of the job that set it off, and counts that capture.

    Raises:
        ValueError: on a naive ``start`` or ``end`` (stored times are UTC).
    """

    site: str | None = None
    camera: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    end_inclusive: bool = False

    def __post_init__(self) -> None:
        if any(bound is not None and bound.utcoffset() is None for bound in (self.start, self.end)):
            raise ValueError("start and end must be timezone-aware")
