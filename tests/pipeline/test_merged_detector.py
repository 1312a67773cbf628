"""Two detectors merged (detector weights ``a.pt+b.pt``): worker.pipeline.detect.MergedDetector."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maskwatch.core.analysis import DetectorConfig
from worker.pipeline.detect import MergedDetector, MTCNNDetector, build_detector, weights_names
from worker.pipeline.types import Detections

pytestmark = pytest.mark.slow  # real models over images or video

SCENES = Path(__file__).resolve().parents[1] / "evaluation" / "fixtures" / "images"
SCENE = SCENES / "maksssksksss523.jpg"


class _Fixed:
    """A detector that answers the same boxes for every frame."""

    def __init__(self, boxes: list[list[float]], confidence: list[float]) -> None:
        n = len(boxes)
        self.answer = Detections(np.array(boxes, np.float32).reshape(n, 4),
                                 np.array(confidence, np.float32),
                                 np.full((n, 5, 2), float(n), np.float32))

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return [self.answer for _ in frames]


def test_overlapping_boxes_keep_the_more_confident_and_the_rest_stay() -> None:
    first = _Fixed([[10, 10, 50, 50], [100, 100, 140, 140]], [0.95, 0.99])
    second = _Fixed([[12, 12, 52, 52], [200, 10, 230, 40]], [0.98, 0.93])  # IoU 0.82 with [0]
    frames = [np.zeros((300, 300, 3), np.uint8)] * 2

    merged = MergedDetector([first, second]).detect(frames)

    assert len(merged) == 2
    for found in merged:
        kept = {tuple(box) for box in found.xyxy.tolist()}
        assert kept == {(12.0, 12.0, 52.0, 52.0), (100.0, 100.0, 140.0, 140.0),
                        (200.0, 10.0, 230.0, 40.0)}
        assert sorted(found.confidence.tolist()) == pytest.approx([0.93, 0.98, 0.99])
        assert found.landmarks.shape == (3, 5, 2)


def test_no_boxes_anywhere_is_an_empty_answer() -> None:
    empty = _Fixed([], [])
    found = MergedDetector([empty, empty]).detect([np.zeros((40, 40, 3), np.uint8)])[0]
    assert len(found) == 0 and found.xyxy.shape == (0, 4)


def test_weights_names() -> None:
    assert weights_names(None) == [None]
    assert weights_names("mtcnn_finetuned.pt") == ["mtcnn_finetuned.pt"]
    assert weights_names("a.pt+var/b.pt") == ["a.pt", "var/b.pt"]


def test_a_detector_merged_with_itself_finds_what_it_finds_on_a_real_scene() -> None:
    """Wiring: "x+x" builds two MTCNNs and merging identical answers removes every duplicate."""
    config = DetectorConfig(detector_weights="mtcnn_finetuned.pt+mtcnn_finetuned.pt")
    merged = build_detector(config, torch.device("cpu"))
    assert isinstance(merged, MergedDetector) and len(merged.detectors) == 2
    single = build_detector(DetectorConfig(detector_weights="mtcnn_finetuned.pt"),
                            torch.device("cpu"))
    assert isinstance(single, MTCNNDetector)

    frame = np.asarray(Image.open(SCENE).convert("RGB"))
    alone, both = single.detect([frame])[0], merged.detect([frame])[0]
    assert len(alone) >= 1
    order = np.argsort(-alone.confidence)
    np.testing.assert_allclose(both.xyxy, alone.xyxy[order], atol=1e-4)


def test_a_missing_second_file_fails_when_built() -> None:
    with pytest.raises(FileNotFoundError, match="no_such.pt"):
        build_detector(DetectorConfig(detector_weights="mtcnn_finetuned.pt+no_such.pt"),
                       torch.device("cpu"))


def test_detection_cache_key_holds_both_weights_hashes() -> None:
    from ml.training.detections import detector_identity

    one = detector_identity(DetectorConfig(detector_weights="mtcnn_finetuned.pt"))
    both = "mtcnn_finetuned.pt+mtcnn_finetuned.pt"
    two = detector_identity(DetectorConfig(detector_weights=both))
    assert isinstance(one["weights_sha1"], str)
    assert two["weights_sha1"] == [one["weights_sha1"], one["weights_sha1"]]
