"""Sample arithmetic of the MTCNN fine-tuning (ml/training/detector.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ml.training.detector import (
    LABEL_NEG,
    LABEL_PART,
    LABEL_POS,
    categorise,
    crop_like_mtcnn,
    crop_windows,
    greyscale_some,
    iou,
    jitter_boxes,
    pnet_box,
    pnet_target,
    pnet_windows,
    regression_target,
    square,
)


def test_iou_known_values() -> None:
    box = np.array([0.0, 0.0, 10.0, 10.0])
    others = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 5, 5]], float)
    assert iou(box, others) == pytest.approx([1.0, 50 / 150, 0.0, 0.25])


def test_square_keeps_centre_and_takes_longer_side() -> None:
    sq = square(np.array([[10.0, 0.0, 20.0, 30.0]]))[0]
    assert sq == pytest.approx([0.0, 0.0, 30.0, 30.0])


def test_categorise_thresholds() -> None:
    gt = np.array([[0.0, 0.0, 100.0, 100.0]])
    assert categorise(np.array([0.0, 0.0, 100.0, 100.0]), gt) == (LABEL_POS, 0)
    assert categorise(np.array([30.0, 0.0, 130.0, 100.0]), gt)[0] == LABEL_PART  # IoU 0.54
    assert categorise(np.array([60.0, 0.0, 160.0, 100.0]), gt)[0] == LABEL_NEG  # IoU 0.25
    assert categorise(np.array([45.0, 0.0, 145.0, 100.0]), gt)[0] == -1  # IoU 0.38: unused
    assert categorise(np.array([0.0, 0.0, 10.0, 10.0]), np.zeros((0, 4)))[0] == LABEL_NEG


def test_regression_target_inverts_bbreg() -> None:
    box = np.array([10.0, 20.0, 50.0, 60.0])
    gt = np.array([12.0, 18.0, 47.0, 66.0])
    t = regression_target(box, gt)
    w = h = 41.0  # facenet-pytorch's bbreg uses side + 1
    rebuilt = [box[0] + t[0] * w, box[1] + t[1] * h, box[2] + t[2] * w, box[3] + t[3] * h]
    assert rebuilt == pytest.approx(gt, abs=1e-4)


def test_jitter_boxes_are_squares_near_the_face() -> None:
    rng = np.random.default_rng(0)
    boxes = jitter_boxes(np.array([[0.0, 0.0, 40.0, 40.0]]), 50, rng)
    assert np.allclose(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    assert (iou(np.array([0.0, 0.0, 40.0, 40.0]), boxes) > 0.2).all()


def test_crop_matches_detect_face_indexing() -> None:
    img = torch.arange(3 * 10 * 12, dtype=torch.float32).reshape(3, 10, 12)
    crops, valid = crop_like_mtcnn(img, np.array([[2.7, 3.2, 6.9, 7.5], [-5, -5, 3, 3]]), 4)
    assert valid.all() and crops.shape == (2, 3, 4, 4)
    # x 2.7 -> 2, ex 6 ; y 3, ey 7: detect_face takes img[:, y-1:ey, x-1:ex]
    expected = torch.nn.functional.interpolate(img[None, :, 2:7, 1:6], size=(4, 4), mode="area")
    assert torch.allclose(crops[0], expected[0])
    # A box over the border is clipped to the image, not padded.
    clipped = torch.nn.functional.interpolate(img[None, :, 0:3, 0:3], size=(4, 4), mode="area")
    assert torch.allclose(crops[1], clipped[0])


def test_detector_weights_setting_round_trips_and_loads(tmp_path: Path) -> None:
    from facenet_pytorch import MTCNN

    from maskwatch.core.analysis import AnalysisSettings
    from worker.pipeline.detect import load_detector_weights

    settings = AnalysisSettings.from_dict({**AnalysisSettings().to_dict(), "detector_weights": "w"})
    assert settings.detector_config().detector_weights == "w"
    shipped = "mtcnn_finetuned.pt+mtcnn_union.pt"  # the merged detector (model card)
    assert AnalysisSettings.from_dict({}).detector_config().detector_weights == shipped
    stock = AnalysisSettings.from_dict({"detector_weights": None})
    assert stock.detector_config().detector_weights is None

    source = MTCNN(device="cpu")
    torch.nn.init.zeros_(source.rnet.dense4.weight)
    path = tmp_path / "w.pt"
    torch.save({"rnet": source.rnet.state_dict(), "info": {}}, path)
    target = MTCNN(device="cpu")
    onet_before = target.onet.dense5.weight.clone()
    load_detector_weights(target, str(path), torch.device("cpu"))
    assert torch.count_nonzero(target.rnet.dense4.weight) == 0
    assert torch.equal(target.onet.dense5.weight, onet_before)  # absent: stock kept


def test_pnet_target_inverts_pnet_regression() -> None:
    # A 24 px window (pyramid scale 0.5) is reported as [x0 + 2, y0 + 2, x0 + 24, y0 + 24]
    # and regressed with width q2 - q1 = 22 (detect_face's regw, no +1).
    window = np.array([[10.0, 20.0, 34.0, 44.0]])
    assert pnet_box(window)[0] == pytest.approx([12.0, 22.0, 34.0, 44.0])
    gt = np.array([13.0, 19.0, 33.0, 47.0])
    t = pnet_target(window, gt)
    q = pnet_box(window)[0]
    rebuilt = [q[0] + t[0] * 22, q[1] + t[1] * 22, q[2] + t[2] * 22, q[3] + t[3] * 22]
    assert rebuilt == pytest.approx(gt, abs=1e-4)


def test_pnet_windows_are_facenet_first_stage_boxes() -> None:
    """The windows where PNet fires are the boxes facenet-pytorch's first stage reports."""
    from facenet_pytorch.models.mtcnn import PNet
    from facenet_pytorch.models.utils.detect_face import generateBoundingBox, imresample
    from torchvision.ops import batched_nms

    torch.manual_seed(0)
    img = (torch.rand(3, 90, 120) * 255).round()
    pnet = PNet().eval()
    threshold, min_face = 0.3, 20
    windows = pnet_windows(img, pnet, min_face, threshold)
    expected = []
    scale = 12 / min_face
    with torch.inference_mode():
        while min(90, 120) * scale >= 12:
            data = imresample(img[None], (int(90 * scale + 1), int(120 * scale + 1)))
            reg, probs = pnet((data - 127.5) * 0.0078125)
            boxes, inds = generateBoundingBox(reg, probs[:, 1], scale, threshold)
            expected.append(boxes[batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.5), :4])
            scale *= 0.709
    expected_boxes = torch.cat(expected).numpy()
    assert len(windows) == len(expected_boxes) > 0
    # facenet floors its boxes to whole pixels; ours are the exact windows.
    got = np.sort(pnet_box(windows), axis=0)
    assert np.abs(got - np.sort(expected_boxes, axis=0)).max() <= 1.0 + 1e-6


def test_crop_windows_drops_windows_outside_the_image() -> None:
    img = torch.arange(3 * 30 * 40, dtype=torch.float32).reshape(3, 30, 40)
    crops, valid = crop_windows(img, np.array([[0, 0, 24, 24], [30, 10, 42, 22], [4, 4, 16, 16]]))
    assert valid.tolist() == [True, False, True]
    assert crops.shape == (2, 3, 12, 12)
    assert torch.equal(crops[1], img[:, 4:16, 4:16])  # a 12 px window is read as it is


def test_train_detector_refuses_unknown_stages(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from maskwatch.cli import app

    out = tmp_path / "w.pt"
    result = CliRunner().invoke(app, ["train-detector", str(tmp_path), "--out", str(out),
                                      "--stages", "pnet,qnet"])
    assert result.exit_code == 2
    assert "stages must be some of" in result.output
    assert not out.exists()


class _FaceProbByMean(torch.nn.Module):
    """A stand-in ONet: a crop's face probability is its mean pixel (crops are uniform here)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        face = (x.mean(dim=(1, 2, 3)) / 0.0078125 + 127.5) / 255.0  # back to [0, 1]
        n = len(x)
        return torch.zeros(n, 4), torch.zeros(n, 10), torch.stack([1 - face, face], 1)


def test_neg_veto_drops_only_face_like_negatives() -> None:
    from ml.training.detector import SampleSet, veto_face_like_negatives

    levels = [250, 20, 250, 240, 100]  # mean pixel: teacher face prob 0.98, 0.08, 0.98, 0.94, 0.39
    labels = np.array([LABEL_NEG, LABEL_NEG, LABEL_POS, LABEL_NEG, LABEL_PART])
    crops48 = torch.stack([torch.full((3, 48, 48), v, dtype=torch.uint8) for v in levels])
    crops24 = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 3, 24, 24)
    samples = SampleSet(crops24, crops48, labels, np.eye(5, 4, dtype=np.float32),
                        np.array([False, False, True, False, True]))

    kept = veto_face_like_negatives(samples, 0.95, teacher=_FaceProbByMean())
    # the first negative goes (0.98); the positive at 0.98 and the 0.94 negative stay
    assert kept.vetoed == 1
    assert kept.labels.tolist() == [LABEL_NEG, LABEL_POS, LABEL_NEG, LABEL_PART]
    assert kept.crops24[:, 0, 0, 0].tolist() == [1, 2, 3, 4]  # rows stay aligned
    assert kept.targets[:, 0].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert kept.targets[0, 1] == 1.0  # row 1's target (eye row 1)
    assert kept.masked.tolist() == [False, True, False, True]
    assert veto_face_like_negatives(samples, 0.9, teacher=_FaceProbByMean()).vetoed == 2


def test_unmasked_factor_multiplies_the_unmasked_faces_samples() -> None:
    from ml.training.detector import DetectorTrainConfig, scene_boxes

    gt = np.array([[20.0, 20.0, 80.0, 80.0], [200.0, 40.0, 260.0, 100.0]])
    is_masked = np.array([True, False])
    none = np.zeros((0, 4))

    def per_face(factor: int) -> list[int]:
        config = DetectorTrainConfig(unmasked_factor=factor, neg_per_scene=0, hard_neg_per_scene=0)
        got = scene_boxes(gt, is_masked, (300, 300), none, config, np.random.default_rng(0))
        faces = [categorise(box, gt) for box in got.boxes]
        return [sum(1 for label, face in faces if label == LABEL_POS and face == k) for k in (0, 1)]

    config = DetectorTrainConfig()
    assert per_face(1) == [config.pos_per_face, config.pos_per_face]
    assert per_face(3) == [config.pos_per_face, 3 * config.pos_per_face]


def test_greyscale_some_turns_about_that_share_of_crops_grey() -> None:
    crops = torch.randint(0, 256, (400, 3, 24, 24), dtype=torch.uint8)
    assert greyscale_some(crops, 0.0, torch.Generator().manual_seed(0)) is crops
    every = greyscale_some(crops, 1.0, torch.Generator().manual_seed(0))
    # luma by hand for one pixel: 0.299 R + 0.587 G + 0.114 B, in all three channels
    r, g, b = (float(crops[0, c, 5, 7]) for c in range(3))
    assert every[0, :, 5, 7].tolist() == pytest.approx([0.299 * r + 0.587 * g + 0.114 * b] * 3)

    some = greyscale_some(crops, 0.3, torch.Generator().manual_seed(0))
    grey = (some[:, 0] == some[:, 1]).all(dim=(1, 2)) & (some[:, 1] == some[:, 2]).all(dim=(1, 2))
    assert 0.2 < grey.float().mean() < 0.4
    untouched = ~grey
    assert torch.equal(some[untouched], crops[untouched].float())
    again = greyscale_some(crops, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(some, again)  # seeded: the same crops turn grey
