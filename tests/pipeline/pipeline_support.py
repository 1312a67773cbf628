"""Helpers for the pipeline's tests on real models: a detector that counts its work."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worker.pipeline.detect import FaceDetector, Rect, RegionDetector
from worker.pipeline.types import Detections


@dataclass
class CountingDetector:
    """The real detector, counting the whole frames, the region searches and the frame
    pixels it is asked to search."""

    inner: FaceDetector
    frames: int = 0
    pixels: int = 0
    region_calls: int = 0

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        self.frames += len(images)
        self.pixels += sum(image.shape[0] * image.shape[1] for image in images)
        return self.inner.detect(images)

    def detect_regions(
        self, image: np.ndarray, rects: list[Rect], expected: list[int] | None = None
    ) -> Detections:
        assert isinstance(self.inner, RegionDetector)
        self.region_calls += 1
        self.pixels += sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in rects)
        return self.inner.detect_regions(image, rects, expected)
