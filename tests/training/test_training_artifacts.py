"""The committed artefacts of training: the kaggle scene split and the shipped checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from maskwatch.core.labels import CLASS_NOT_FACE, MASK_LABELS
from ml.training.prepare import DEFAULT_SPLITS_DIR
from worker.pipeline.classify import Checkpoint, CNNMaskClassifier

SHIPPED = Path(__file__).resolve().parents[2] / "worker" / "models" / "mask_cnn.pt"


def test_kaggle_scene_lists_are_disjoint_and_complete():
    train = (DEFAULT_SPLITS_DIR / "kaggle_scenes_train.txt").read_text().split()
    val = (DEFAULT_SPLITS_DIR / "kaggle_scenes_val.txt").read_text().split()
    assert len(set(train)) == len(train) and len(set(val)) == len(val)
    assert not set(train) & set(val)
    assert len(train) + len(val) == 428
    assert 0.15 <= len(val) / (len(train) + len(val)) <= 0.25


def test_shipped_checkpoint_classifies_faces():
    checkpoint = Checkpoint.load(SHIPPED)
    assert SHIPPED.stat().st_size < 3 * 1024 * 1024
    assert checkpoint.class_names == (*MASK_LABELS, CLASS_NOT_FACE)
    assert checkpoint.metrics["val"]["count"] > 0
    assert "kaggle/train" in checkpoint.training["data_dirs"]
    assert "kaggle/val" not in checkpoint.training["data_dirs"]
    classifier = CNNMaskClassifier(checkpoint, torch.device("cpu"))
    frame = np.full((120, 160, 3), 128, np.uint8)
    labels = classifier.classify(frame, np.array([[10, 10, 40, 40], [60, 20, 120, 80]],
                                                 np.float32))
    assert labels.probabilities.shape == (2, 4)
    np.testing.assert_allclose(labels.probabilities.sum(axis=1), 1.0, rtol=1e-5)
