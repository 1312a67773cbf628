"""Crop geometry: saved crops and network input match the inference cut."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.data.crops import crop_to_input, cut_crop, face_size_px
from ml.data.folders import FrameEdge, sample_weights
from ml.training.prepare import pick_face
from worker.pipeline.classify import CropPreset, crop_faces
from worker.pipeline.types import Detections


@pytest.fixture
def frame() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)


def test_cut_crop_is_the_square_box_with_margin(frame):
    # face box side 10, margin 0.15 -> square side 13 from (8, 8): pixels 8..20 exactly
    crop = cut_crop(frame, np.array([9.5, 9.5, 19.5, 19.5]), margin=0.15)
    assert crop.shape == (13, 13, 3)
    np.testing.assert_array_equal(crop, frame[8:21, 8:21])


def test_cut_crop_reflects_outside_the_frame(frame):
    crop = cut_crop(frame, np.array([-2.5, -2.5, 7.5, 7.5]), margin=0.15)
    np.testing.assert_array_equal(crop[4:, 4:], frame[0:9, 0:9])
    np.testing.assert_array_equal(crop[3, 4:], frame[1, 0:9])  # mirrored row, not black


def test_cut_crop_caps_large_faces(frame):
    big = np.repeat(np.repeat(frame, 8, axis=0), 8, axis=1)
    assert cut_crop(big, np.array([50, 50, 450, 450]), margin=0.15).shape == (128, 128, 3)


def test_crop_to_input_matches_inference_on_the_frame(frame):
    preset = CropPreset(size=24, margin=0.15)
    # square-with-margin = [17, 7, 56, 46]: on the pixel grid, so the saved crop is lossless
    face = np.array([21.5, 11.5, 51.5, 41.5], np.float32)
    crop = cut_crop(frame, face, preset.margin, max_side=1000)
    from_frame = crop_faces(torch.from_numpy(frame), face[None], preset)[0]
    from_crop = crop_to_input(crop, preset)
    # 39 -> 24 px: both paths average the same pixels, up to roi_align's sample placement
    assert (from_frame - from_crop).abs().mean() < 1.0
    assert from_crop.shape == (3, 24, 24)


def test_face_size_from_crop_side():
    assert face_size_px(130, 0.15) == pytest.approx(100)


def _detections(boxes: list[list[float]]) -> Detections:
    xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    return Detections(xyxy, np.ones(len(xyxy), np.float32), np.zeros((len(xyxy), 5, 2),
                                                                       np.float32))


@pytest.mark.parametrize(
    ("boxes", "index", "reason"),
    [
        ([], None, "no_face"),
        ([[0, 0, 50, 50]], 0, ""),
        ([[0, 0, 20, 20], [30, 30, 90, 90]], 1, ""),  # a small background face is ignored
        ([[0, 0, 50, 50], [60, 0, 100, 40]], None, "ambiguous"),
    ],
)
def test_pick_face(boxes, index, reason):
    assert pick_face(_detections(boxes), comparable_ratio=0.5) == (index, reason)


def test_sample_weights_by_class_and_by_source_stratum():
    labels = torch.tensor([0, 0, 0, 1, 0, 1])
    by_class = sample_weights(labels, 2, power=1.0)
    np.testing.assert_allclose(by_class.numpy(), [1 / 4, 1 / 4, 1 / 4, 1 / 2, 1 / 4, 1 / 2])
    groups = ["a", "a", "a", "a", "b", "b"]
    by_source = sample_weights(labels, 2, power=1.0, groups=groups)
    # strata (a, 0): 3, (a, 1): 1, (b, 0): 1, (b, 1): 1 -> each stratum drawn equally often
    np.testing.assert_allclose(by_source.numpy(), [1 / 3, 1 / 3, 1 / 3, 1, 1, 1])
    np.testing.assert_allclose(sample_weights(labels, 2, 0.0, groups).numpy(), np.ones(6))


def test_frame_edge_blanks_bands_along_the_sides():
    torch.manual_seed(0)
    image = torch.full((3, 40, 40), 200, dtype=torch.uint8)
    every_side = FrameEdge(max_band=0.25, side_p=1.0)
    for _ in range(20):
        out = every_side(image)
        assert out.dtype == torch.uint8 and out.shape == image.shape
        assert (out[:, 15:25, 15:25] == 200).all()  # the centre is never touched
        assert ((out == 0) | (out == 200)).all()
        assert (image == 200).all()  # the input is left alone
    assert (FrameEdge(max_band=0.25, side_p=0.0)(image) == 200).all()
