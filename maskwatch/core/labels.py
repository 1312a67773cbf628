"""The verdicts a face can get."""

from __future__ import annotations

from enum import StrEnum


class Label(StrEnum):
    """A face's mask verdict; the values are what the database, the API and reports show."""

    WITH_MASK = "with_mask"
    WITHOUT_MASK = "without_mask"
    INCORRECT_MASK = "incorrect_mask"


MASK_LABELS: tuple[str, ...] = tuple(label.value for label in Label)
# A classifier trained with this extra class can veto a detector box: such boxes are dropped,
# so it is never a face's label.
CLASS_NOT_FACE = "not_face"
