"""Typed results passed between pipeline stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Faces found in one frame, in that frame's pixel coordinates."""

    xyxy: np.ndarray  # (N, 4) float32: x1, y1, x2, y2
    confidence: np.ndarray  # (N,) float32: probability that the box is a face
    landmarks: np.ndarray  # (N, 5, 2) float32: eyes, nose, mouth corners

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros((0,), np.float32),
            landmarks=np.zeros((0, 5, 2), np.float32),
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def select(self, keep: np.ndarray) -> Detections:
        """The subset picked by a boolean mask or index array."""
        return Detections(self.xyxy[keep], self.confidence[keep], self.landmarks[keep])

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        """The faces of ``parts`` (of one frame), in order."""
        return cls(
            np.concatenate([d.xyxy for d in parts]),
            np.concatenate([d.confidence for d in parts]),
            np.concatenate([d.landmarks for d in parts]),
        )


@dataclass(frozen=True)
class FaceLabels:
    """The classifier's verdict for each face of one frame."""

    class_names: tuple[str, ...]
    probabilities: np.ndarray  # (N, C) float32, rows sum to 1 (less once not_face is removed)
    # (N,) bool: True for a face the classifier did not read, whose row is its track's
    # settled reading (track.FaceTracker.held_labels); None: every face was read
    held: np.ndarray | None = None

    @property
    def label_index(self) -> np.ndarray:  # (N,) int64
        return self.probabilities.argmax(axis=1) if len(self) else np.zeros((0,), np.int64)

    @property
    def labels(self) -> list[str]:
        return [self.class_names[i] for i in self.label_index]

    @property
    def label_confidence(self) -> np.ndarray:  # (N,) float32
        if not len(self):
            return np.zeros((0,), np.float32)
        return self.probabilities.max(axis=1).astype(np.float32)

    def __len__(self) -> int:
        return int(self.probabilities.shape[0])

    @property
    def read(self) -> np.ndarray:  # (N,) bool: the faces the classifier read
        if self.held is None:
            return np.ones((len(self),), bool)
        return ~self.held

    def select(self, keep: np.ndarray) -> FaceLabels:
        held = None if self.held is None else self.held[keep]
        return FaceLabels(self.class_names, self.probabilities[keep], held)

    def extended(self, other: FaceLabels) -> FaceLabels:
        """These faces' labels followed by ``other``'s (the same classes)."""
        held = None
        if self.held is not None or other.held is not None:
            held = np.concatenate([~self.read, ~other.read])
        return FaceLabels(
            self.class_names, np.concatenate([self.probabilities, other.probabilities]), held
        )
