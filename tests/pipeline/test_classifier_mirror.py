"""Mirrored reading of faces: the classifier averages each face with its mirror image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskwatch.runtime import analysis_settings, models_for
from maskwatch.settings import DEFAULT_CHECKPOINT, Settings
from worker.pipeline.classify import Checkpoint, CNNMaskClassifier

pytestmark = pytest.mark.slow  # real models over images or video

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def shipped() -> Checkpoint:
    return Checkpoint.load(DEFAULT_CHECKPOINT)


def _mirror_boxes(xyxy: np.ndarray, width: int) -> np.ndarray:
    mirrored = xyxy.copy()
    mirrored[:, [0, 2]] = width - xyxy[:, [2, 0]]
    return mirrored


def _scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (180, 320, 3), dtype=np.uint8)
    frame[40:120, 30:110] = np.linspace(0, 255, 80, dtype=np.uint8)[None, :, None]  # lopsided
    boxes = np.array([[30, 40, 110, 120], [150.5, 20.25, 190.5, 70.25], [280, 140, 330, 190]],
                     np.float32)  # the last runs past the frame's edge
    return frame, boxes


def test_mirrored_reading_is_the_mean_of_the_face_and_its_mirror_image(shipped: Checkpoint) -> None:
    frame, boxes = _scene()
    plain = CNNMaskClassifier(shipped, CPU, mirror=False)
    as_is = plain.classify(frame, boxes).probabilities
    flipped = plain.classify(np.ascontiguousarray(frame[:, ::-1]),
                             _mirror_boxes(boxes, frame.shape[1])).probabilities
    assert np.abs(as_is - flipped).max() > 1e-3  # the two readings differ, or this proves nothing

    mirrored = CNNMaskClassifier(shipped, CPU).classify(frame, boxes)
    np.testing.assert_allclose(mirrored.probabilities, (as_is + flipped) / 2, atol=1e-5)


def test_mirrored_reading_does_not_change_when_the_frame_is_mirrored(shipped: Checkpoint) -> None:
    frame, boxes = _scene()
    classifier = CNNMaskClassifier(shipped, CPU)
    a = classifier.classify(frame, boxes).probabilities
    b = classifier.classify(np.ascontiguousarray(frame[:, ::-1]),
                            _mirror_boxes(boxes, frame.shape[1])).probabilities
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_no_faces_gives_no_rows(shipped: Checkpoint) -> None:
    frame, _ = _scene()
    labels = CNNMaskClassifier(shipped, CPU).classify(frame, np.zeros((0, 4), np.float32))
    assert labels.probabilities.shape == (0, len(shipped.class_names))


@pytest.mark.parametrize(("env", "expected"), [(None, True), ("false", False), ("1", True)])
def test_mirror_faces_setting_reaches_the_loaded_classifier(
    monkeypatch: pytest.MonkeyPatch, env: str | None, expected: bool
) -> None:
    if env is None:
        monkeypatch.delenv("MASKWATCH_MIRROR_FACES", raising=False)
    else:
        monkeypatch.setenv("MASKWATCH_MIRROR_FACES", env)
    settings = Settings(detector_weights="mtcnn_finetuned.pt")
    models = models_for(settings, analysis_settings(settings))
    assert isinstance(models.classifier, CNNMaskClassifier)
    assert models.classifier.mirror is expected
