"""A JSON cache of face detections on training images, so reruns skip the detector."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from worker.pipeline.detect import DetectorConfig, FaceDetector, resolve_weights, weights_names
from worker.pipeline.types import Detections

logger = logging.getLogger(__name__)


def detector_identity(config: DetectorConfig) -> dict[str, object]:
    """The detector's settings and the SHA-1 of its weights file: what its output depends on."""
    key: dict[str, object] = asdict(config)
    hashes = [hashlib.sha1(path.read_bytes()).hexdigest()
              for name in weights_names(config.detector_weights) if name is not None
              for path in [resolve_weights(name)] if path.is_file()]
    if hashes:  # retrained weights under the same name are another detector
        key["weights_sha1"] = hashes[0] if len(hashes) == 1 else hashes
    return key


class DetectionCache:
    """Detections keyed by image path relative to the data root, one file per detector config.

    The detector is built on first use only, so a fully cached rerun never loads MTCNN.
    """

    def __init__(self, cache_dir: Path, config: DetectorConfig,
                 make_detector: Callable[[DetectorConfig], FaceDetector]) -> None:
        key = detector_identity(config)
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()
        self.path = cache_dir / f"detections-{digest[:10]}.json"
        self.config = config
        self._make_detector = make_detector
        self._detector: FaceDetector | None = None
        self._entries: dict[str, dict[str, list]] = (
            json.loads(self.path.read_text()) if self.path.is_file() else {})
        self._unsaved = 0

    def detect(self, key: str, load_image: Callable[[], np.ndarray]) -> Detections:
        """Cached detections for the image ``key``; ``load_image`` is called only on a miss."""
        entry = self._entries.get(key)
        if entry is None:
            if self._detector is None:
                self._detector = self._make_detector(self.config)
            found = self._detector.detect([load_image()])[0]
            entry = {"xyxy": found.xyxy.tolist(), "confidence": found.confidence.tolist(),
                     "landmarks": found.landmarks.tolist()}
            self._entries[key] = entry
            self._unsaved += 1
            if self._unsaved >= 200:
                self.save()
        return Detections(
            xyxy=np.asarray(entry["xyxy"], np.float32).reshape(-1, 4),
            confidence=np.asarray(entry["confidence"], np.float32).reshape(-1),
            landmarks=np.asarray(entry["landmarks"], np.float32).reshape(-1, 5, 2),
        )

    def save(self) -> None:
        if not self._unsaved and self.path.is_file():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._entries))
        tmp.replace(self.path)
        self._unsaved = 0
        logger.info("saved %d cached detections to %s", len(self._entries), self.path)
