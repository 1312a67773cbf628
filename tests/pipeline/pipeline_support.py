"""Helpers for the pipeline's tests on real models: a detector that counts its work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from worker.pipeline import detect as detect_module
from worker.pipeline.detect import FaceDetector, Rect, RegionDetector
from worker.pipeline.types import Detections


@dataclass
class CountingDetector:
    """The real detector, counting the whole frames, the region searches, the frame pixels
    it is asked to search, the region searches that ran a PNet pyramid and the faces it
    followed (RNet/ONet around their last boxes)."""

    inner: FaceDetector
    frames: int = 0
    pixels: int = 0
    region_calls: int = 0
    searched_calls: int = 0  # region calls that ran a PNet pyramid (not only followed faces)
    faces_followed: int = 0

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        self.frames += len(images)
        self.pixels += sum(image.shape[0] * image.shape[1] for image in images)
        return self.inner.detect(images)

    def detect_regions(
        self,
        image: np.ndarray,
        rects: list[Rect],
        expected: list[int] | None = None,
        follow: list[np.ndarray] | None = None,
    ) -> Detections:
        assert isinstance(self.inner, RegionDetector)
        self.region_calls += 1
        self.pixels += sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in rects)
        pyramid, follow_faces = detect_module.detect_faces, detect_module.follow_faces
        searches = []

        def searched(*args: Any, **kwargs: Any) -> Any:
            searches.append(1)
            return pyramid(*args, **kwargs)

        def followed(frame: Any, boxes: Any, *args: Any, **kwargs: Any) -> Any:
            self.faces_followed += len(boxes)
            return follow_faces(frame, boxes, *args, **kwargs)

        detect_module.detect_faces, detect_module.follow_faces = searched, followed
        try:
            return self.inner.detect_regions(image, rects, expected, follow)
        finally:
            detect_module.detect_faces, detect_module.follow_faces = pyramid, follow_faces
            self.searched_calls += bool(searches)
