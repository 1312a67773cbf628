"""The detector's speed-ups change no answer.

MTCNNDetector runs its own cascade (worker/pipeline/cascade.py: every resize read off one
integral image, channels-last tensors, first-stage answers shared by merged detectors); its
boxes must be facenet-pytorch's own MTCNN's with the same weights and thresholds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn.functional import interpolate

from maskwatch.core.analysis import DetectorConfig
from ml.footage import render_composition
from worker.pipeline.cascade import AreaSampler
from worker.pipeline.detect import (
    MergedDetector,
    MTCNNDetector,
    build_detector,
    load_detector_weights,
)
from worker.pipeline.types import Detections

pytestmark = pytest.mark.slow  # real models over images or video

SCENES = Path(__file__).resolve().parents[1] / "evaluation" / "fixtures" / "images"
CPU = torch.device("cpu")


def _frames() -> list[np.ndarray]:
    scenes = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(SCENES.glob("*.jpg"))]
    return [*scenes, np.asarray(render_composition(2, 1, size=(640, 360)))]


def _facenet_answer(frame: np.ndarray, config: DetectorConfig) -> Detections:
    """What facenet-pytorch's MTCNN, untouched, finds with the same weights and thresholds."""
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, min_face_size=config.min_face_size,
                  thresholds=list(config.thresholds), post_process=False, device="cpu")
    if config.detector_weights is not None:
        load_detector_weights(mtcnn, config.detector_weights, CPU)
    with torch.inference_mode():
        boxes, probs = mtcnn.detect(frame)
    boxes = np.asarray(boxes if boxes is not None else [], np.float32).reshape(-1, 4)
    probs = np.asarray(probs if boxes.size else [], np.float32).reshape(-1)
    boxes = boxes.clip(0, [frame.shape[1], frame.shape[0]] * 2)
    keep = probs >= config.face_threshold
    return Detections(boxes[keep], probs[keep], np.zeros((int(keep.sum()), 5, 2), np.float32))


def _assert_same_boxes(found: Detections, expected: Detections) -> None:
    assert len(found) == len(expected)
    # The order of boxes of almost equal score may differ: compare them sorted.
    ours, theirs = np.lexsort(found.xyxy.T[::-1]), np.lexsort(expected.xyxy.T[::-1])
    np.testing.assert_allclose(found.xyxy[ours], expected.xyxy[theirs], atol=1e-3)
    np.testing.assert_allclose(found.confidence[ours], expected.confidence[theirs], atol=1e-5)


@pytest.mark.parametrize("weights", [None, "mtcnn_finetuned.pt", "mtcnn_union.pt"])
def test_detector_boxes_equal_facenet_mtcnn(weights: str | None) -> None:
    config = DetectorConfig(detector_weights=weights, min_detect_side=0)  # no enlarging
    detector = MTCNNDetector(config, CPU)
    found_any = 0
    for frame in _frames():
        found = detector.detect([frame])[0]
        _assert_same_boxes(found, _facenet_answer(frame, config))
        found_any += len(found)
    assert found_any >= 3  # the comparison is about faces, not empty answers


def test_merged_detector_shares_work_and_answers_as_its_parts_merged() -> None:
    config = DetectorConfig(detector_weights="mtcnn_finetuned.pt+mtcnn_union.pt")
    merged = build_detector(config, CPU)
    assert isinstance(merged, MergedDetector)
    parts = [MTCNNDetector(DetectorConfig(detector_weights=name), CPU)
             for name in ("mtcnn_finetuned.pt", "mtcnn_union.pt")]
    unshared = MergedDetector(parts)
    unshared._cascades = []  # each part on its own, as before sharing
    frames = _frames()
    for found, expected in zip(merged.detect(frames), unshared.detect(frames), strict=True):
        _assert_same_boxes(found, expected)


@pytest.mark.parametrize(("height", "width", "out"), [(37, 53, (11, 17)), (20, 20, (24, 24)),
                                                       (9, 30, (24, 48)), (48, 48, (48, 48))])
def test_area_sampler_equals_area_interpolation(height: int, width: int,
                                                out: tuple[int, int]) -> None:
    rng = np.random.default_rng(height * width)
    image = torch.from_numpy(rng.integers(0, 256, (3, 60, 80), dtype=np.uint8))
    sampler = AreaSampler(image)
    top, left = 60 - height, 80 - width
    region = image[:, top:top + height, left:left + width].unsqueeze(0).float()
    expected = interpolate(region, size=out, mode="area")
    box = [torch.tensor([v]) for v in (top, top + height, left, left + width)]
    torch.testing.assert_close(sampler.resize(*box, *out), expected, rtol=0, atol=1e-4)
    whole = interpolate(image.unsqueeze(0).float(), size=out, mode="area")
    torch.testing.assert_close(sampler.resize_whole(*out), whole, rtol=0, atol=1e-4)
