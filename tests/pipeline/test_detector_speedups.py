"""The detector's speed-ups change no answer: boxes equal facenet-pytorch's own MTCNN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from worker.pipeline.config import DetectorConfig
from worker.pipeline.detect import MTCNNDetector, load_detector_weights

SCENES = Path(__file__).resolve().parents[1] / "evaluation" / "fixtures" / "images"


def _facenet_answer(frame: np.ndarray, config: DetectorConfig) -> tuple[np.ndarray, np.ndarray]:
    """What facenet-pytorch's MTCNN, untouched, finds with the same weights and thresholds."""
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, min_face_size=config.min_face_size,
                  thresholds=list(config.thresholds), post_process=False, device="cpu")
    if config.detector_weights is not None:
        load_detector_weights(mtcnn, config.detector_weights, torch.device("cpu"))
    with torch.inference_mode():
        boxes, probs = mtcnn.detect(frame)
    boxes = np.asarray(boxes if boxes is not None else [], np.float32).reshape(-1, 4)
    probs = np.asarray(probs if boxes.size else [], np.float32).reshape(-1)
    keep = probs >= config.face_threshold
    return boxes[keep], probs[keep]


@pytest.mark.parametrize("weights", ["mtcnn_finetuned.pt", "mtcnn_union.pt"])
def test_detector_boxes_equal_facenet_mtcnn(weights: str) -> None:
    config = DetectorConfig(detector_weights=weights, min_detect_side=0)  # no enlarging
    for path in sorted(SCENES.glob("*.jpg")):
        frame = np.asarray(Image.open(path).convert("RGB"))
        expected_boxes, expected_probs = _facenet_answer(frame, config)
        found = MTCNNDetector(config, torch.device("cpu")).detect([frame])[0]
        expected_boxes = expected_boxes.clip(0, [frame.shape[1], frame.shape[0]] * 2)
        assert len(found) == len(expected_boxes), path.name
        # The order of boxes of almost equal score may differ: compare them sorted.
        ours, theirs = np.lexsort(found.xyxy.T[::-1]), np.lexsort(expected_boxes.T[::-1])
        np.testing.assert_allclose(found.xyxy[ours], expected_boxes[theirs], atol=1e-3)
        np.testing.assert_allclose(found.confidence[ours], expected_probs[theirs], atol=1e-5)
