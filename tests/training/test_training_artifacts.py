"""The committed artefacts of training: the kaggle scene split and the shipped checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maskwatch.core.labels import CLASS_NOT_FACE, MASK_LABELS, Label
from ml.footage import face_paths
from ml.training.prepare import DEFAULT_SPLITS_DIR
from worker.pipeline.classify import Checkpoint, CNNMaskClassifier

pytestmark = pytest.mark.slow  # the shipped classifier on faces

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
    # The committed faces (ml/faces), each boxed inside its own photo: read as their folder.
    for kind in (Label.WITH_MASK, Label.WITHOUT_MASK):
        for path in face_paths(kind):
            photo = np.array(Image.open(path).convert("RGB"))
            height, width = photo.shape[:2]
            box = np.array([[0.12 * width, 0.12 * height, 0.88 * width, 0.88 * height]],
                           np.float32)
            assert classifier.classify(photo, box).labels == [kind], path.name
