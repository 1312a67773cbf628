"""Classifier ensembles (`maskwatch ensemble`): members averaged in probability, one file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maskwatch.cli import app
from worker.pipeline.classify import Checkpoint, CNNMaskClassifier, CropPreset, MaskCNN

pytestmark = pytest.mark.slow  # training

CLASSES = ("with_mask", "without_mask", "not_face")


def _member(path: Path, seed: int, classes: tuple[str, ...] = CLASSES) -> Checkpoint:
    torch.manual_seed(seed)
    model = MaskCNN(len(classes), width=8)
    checkpoint = Checkpoint("mask_cnn", classes, CropPreset(), model.state_dict(), {"width": 8},
                            training={"data_dirs": [f"set{seed}/train"]})
    checkpoint.save(path)
    return Checkpoint.load(path)  # fp16 round trip, as shipped


def test_ensemble_file_labels_faces_with_the_mean_of_its_members(tmp_path: Path) -> None:
    members = [_member(tmp_path / f"m{k}.pt", seed=k) for k in range(3)]
    out = tmp_path / "ensemble.pt"
    result = CliRunner().invoke(app, ["ensemble", *(str(tmp_path / f"m{k}.pt") for k in range(3)),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 members" in result.output

    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 50, 50], [60, 20, 130, 90]], np.float32)
    cpu = torch.device("cpu")
    expected = np.mean([CNNMaskClassifier(m, cpu).classify(frame, boxes).probabilities
                        for m in members], axis=0)
    loaded = Checkpoint.load(out)
    got = CNNMaskClassifier(loaded, cpu).classify(frame, boxes)
    assert got.class_names == CLASSES
    np.testing.assert_allclose(got.probabilities, expected, atol=1e-5)
    assert loaded.training["data_dirs"] == ["set0/train", "set1/train", "set2/train"]
    assert loaded.training["member_files"] == ["m0.pt", "m1.pt", "m2.pt"]


def _text(output: str) -> str:
    """The CLI's words without the error box's borders and line breaks."""
    return " ".join(output.replace("│", " ").split())


def test_ensemble_refuses_members_that_disagree(tmp_path: Path) -> None:
    _member(tmp_path / "a.pt", seed=0)
    _member(tmp_path / "b.pt", seed=1, classes=("with_mask", "without_mask"))
    out = tmp_path / "e.pt"
    result = CliRunner().invoke(app, ["ensemble", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"),
                                      "--out", str(out)])
    assert result.exit_code == 2
    assert "must share architecture, classes and crop preset" in _text(result.output)
    assert not out.exists()
    alone = CliRunner().invoke(app, ["ensemble", str(tmp_path / "a.pt"), "--out", str(out)])
    assert alone.exit_code == 2 and "at least two" in _text(alone.output)
