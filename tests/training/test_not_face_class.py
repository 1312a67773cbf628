"""The shipped classifier's not_face class: training with it, cutting its crops, and dropping
the boxes it vetoes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from maskwatch.cli import app
from maskwatch.core.labels import CLASS_NOT_FACE
from ml.training.prepare import detection_classes
from worker.pipeline.analyze import drop_non_faces
from worker.pipeline.classify import Checkpoint
from worker.pipeline.types import Detections, FaceLabels


def test_not_face_boxes_are_dropped_and_the_rest_keep_their_scores() -> None:
    names = ("with_mask", "without_mask", "incorrect_mask", CLASS_NOT_FACE)
    probabilities = np.array([
        [0.7, 0.1, 0.0, 0.2],  # a face
        [0.1, 0.2, 0.1, 0.6],  # not a face: dropped
        [0.2, 0.5, 0.0, 0.3],  # a face
        [0.3, 0.2, 0.05, 0.45],  # not_face leads but holds less than half: kept
    ], np.float32)
    detections = Detections(np.arange(16, dtype=np.float32).reshape(4, 4),
                            np.array([0.99, 0.95, 0.9, 0.93], np.float32),
                            np.zeros((4, 5, 2), np.float32))
    kept, labels = drop_non_faces(detections, FaceLabels(names, probabilities))
    assert kept.confidence.tolist() == pytest.approx([0.99, 0.9, 0.93])
    assert labels.labels == ["with_mask", "without_mask", "with_mask"]
    assert labels.label_confidence.tolist() == pytest.approx([0.7, 0.5, 0.3])  # not renormalised
    three = FaceLabels(names[:3], probabilities[:, :3])
    assert drop_non_faces(detections, three)[1] is three  # a 3-class model drops nothing


def test_detected_boxes_are_labelled_by_their_overlap_with_ground_truth() -> None:
    gt = np.array([[0, 0, 20, 40], [100, 100, 140, 140]], np.float32)
    found = np.array([
        [1, 2, 21, 40],  # IoU 0.86 with the first face
        [100, 110, 140, 150],  # IoU 0.6 with the second face
        [0, 10, 30, 50],  # IoU 0.42 with the first face: ambiguous
        [200, 200, 240, 240],  # nowhere near a face
        [-10, 0, 30, 40],  # IoU 0.5 with the first face, exactly
        [26, 5, 50, 40],  # 0 with the face, 0.06 with its 40 px square: not a face
    ], np.float32)
    classes = detection_classes(found, gt, ["with_mask", "without_mask"])
    assert classes == ["with_mask", "without_mask", None, CLASS_NOT_FACE, "with_mask",
                       CLASS_NOT_FACE]
    assert detection_classes(found[:2], np.zeros((0, 4)), []) == [CLASS_NOT_FACE] * 2


def _crops(root: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for k, name in enumerate(("with_mask", "without_mask", CLASS_NOT_FACE)):
        (root / name).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 255, (40, 40, 3)).astype(np.uint8) // (k + 1)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.mark.slow
def test_train_a_classifier_with_a_not_face_class(tmp_path: Path) -> None:
    train_dir = _crops(tmp_path / "train", 0)
    out = tmp_path / "mask_cnn.pt"
    result = CliRunner().invoke(app, [
        "train", str(train_dir), "--out", str(out), "--epochs", "1",
        "--batch-size", "6", "--workers", "0", "--val-dir", str(_crops(tmp_path / "val", 1))])
    assert result.exit_code == 0, result.output
    checkpoint = Checkpoint.load(out)
    assert checkpoint.class_names == ("with_mask", "without_mask", CLASS_NOT_FACE)
    assert checkpoint.arch == "mask_cnn" and checkpoint.preset.size == 48
    assert checkpoint.metrics["val"]["count"] == 18


@pytest.mark.slow
def test_unshipped_architectures_are_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "train", str(_crops(tmp_path / "train", 0)), "--out", str(tmp_path / "m.pt"),
        "--arch", "onet_head", "--workers", "0"])
    assert result.exit_code == 2
    assert "unknown classifier architecture 'onet_head'" in result.output
    assert not (tmp_path / "m.pt").exists()


def fixture_scenes(tmp_path: Path, train: list[str], val: list[str]) -> Path:
    """tmp_path/shared: the committed evaluation scenes as kaggle-scenes-dev; returns the
    folder of split lists naming ``train`` and ``val``."""
    import shutil

    fixtures = Path(__file__).resolve().parent.parent / "evaluation" / "fixtures"
    scenes = tmp_path / "shared" / "datasets" / "kaggle-scenes-dev"
    shutil.copytree(fixtures / "annotations", scenes / "annotations")
    shutil.copytree(fixtures / "images", scenes / "images")
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "kaggle_scenes_train.txt").write_text("".join(f"{s}\n" for s in train))
    (splits / "kaggle_scenes_val.txt").write_text("".join(f"{s}\n" for s in val))
    return splits


@pytest.mark.slow
def test_prepare_cuts_detected_faces_with_their_ground_truth_class(tmp_path: Path) -> None:
    """kaggle_detected: the real detector's boxes on two real scenes, labelled by their GT."""
    import json

    from ml.training.prepare import PrepareConfig, prepare
    from worker.pipeline.detect import MTCNNDetector

    splits = fixture_scenes(tmp_path, train=["blank_grey", "maksssksksss523"],
                            val=["maksssksksss125"])
    out = tmp_path / "crops"
    manifest = prepare(
        tmp_path / "shared", out, PrepareConfig(),
        make_detector=lambda c: MTCNNDetector(c, torch.device("cpu")),
        sources=["kaggle_detected"], cache_dir=tmp_path / "cache", splits_dir=splits)
    counts = manifest["counts"]["kaggle_detected"]
    # 523 holds one masked and one unmasked face, 125 one unmasked face (tests/evaluation).
    assert counts["with_mask"] == {"train": 1}
    assert counts["without_mask"] == {"train": 1, "val": 1}
    assert sorted(p.name for p in (out / "val" / "without_mask").iterdir()) == [
        "kd_maksssksksss125_00.jpg"]
    found = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))
    assert all(name.split("/")[1] in ("with_mask", "without_mask", CLASS_NOT_FACE)
               for name in found)
    assert json.loads((out / "manifest.json").read_text())["kaggle_detected"]["split"]


def test_frame_record_counts_no_not_face_boxes() -> None:
    from worker.pipeline.analyze import frame_record
    from worker.pipeline.decode import Frame

    names = ("with_mask", "without_mask", "incorrect_mask", CLASS_NOT_FACE)
    probabilities = np.array([[0.1, 0.1, 0.1, 0.7], [0.6, 0.2, 0.1, 0.1]], np.float32)  # 1st: veto
    detections = Detections(np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float32),
                            np.array([0.95, 0.99], np.float32), np.zeros((2, 5, 2), np.float32))
    frame = Frame(frame_index=3, timestamp_s=0.6, image=np.zeros((50, 50, 3), np.uint8))
    record = frame_record(frame, detections, FaceLabels(names, probabilities))
    assert (record.faces, record.masked, record.unmasked, record.incorrect) == (1, 1, 0, 0)
    assert [f.label for f in record.detections] == ["with_mask"]
    assert record.detections[0].score == pytest.approx(0.99 * 0.6, abs=1e-4)


@pytest.mark.slow
def test_prepare_data_cuts_with_the_detector_weights_asked_for(tmp_path: Path) -> None:
    import hashlib
    import json

    from typer.testing import CliRunner

    from maskwatch.cli import app
    from worker.pipeline.detect import MODELS_DIR

    splits = fixture_scenes(tmp_path, train=["maksssksksss523"], val=["maksssksksss125"])
    weights = tmp_path / "weights.pt"
    weights.write_bytes((MODELS_DIR / "mtcnn_finetuned.pt").read_bytes())
    base = ["prepare-data", str(tmp_path / "shared"), "--sources", "kaggle_detected",
            "--cache-dir", str(tmp_path / "cache"), "--splits-dir", str(splits)]

    missing = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "no"),
                                       "--detector-weights", str(tmp_path / "nope.pt")])
    assert missing.exit_code == 2
    assert "no such file" in missing.output
    assert not (tmp_path / "no").exists()

    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "crops"),
                                      "--detector-weights", str(weights)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "crops" / "manifest.json").read_text())
    detector = manifest["kaggle_detected"]["detector"]
    assert detector["detector_weights"] == str(weights)
    assert detector["weights_sha1"] == hashlib.sha1(weights.read_bytes()).hexdigest()
    assert manifest["counts"]["kaggle_detected"]["without_mask"] == {"train": 1, "val": 1}
