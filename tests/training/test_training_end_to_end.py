"""Train one epoch on a tiny generated crop folder, then evaluate it through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from maskwatch.cli import app
from worker.pipeline.classify import Checkpoint

pytestmark = pytest.mark.slow  # training

CLASSES = ("with_mask", "without_mask", "incorrect_mask")
SIDES = (14, 30, 60, 100)  # crop sides -> face sizes 10.8, 23, 46, 77 px: one per size slice


def _face(class_name: str, side: int, rng: np.random.Generator, grey: bool) -> Image.Image:
    """A crude face crop: skin ellipse, eyes, and a mask drawn per class."""
    scale = 100 / side
    image = Image.new("RGB", (100, 100), tuple(int(v) for v in rng.integers(40, 200, 3)))
    draw = ImageDraw.Draw(image)
    draw.ellipse((15, 8, 85, 95), fill=(224, 172, 140))
    draw.ellipse((30, 35, 40, 42), fill=(30, 30, 30))
    draw.ellipse((60, 35, 70, 42), fill=(30, 30, 30))
    if class_name == "with_mask":
        draw.rectangle((18, 52, 82, 88), fill=(90, 150, 220))
    elif class_name == "incorrect_mask":
        draw.rectangle((18, 70, 82, 92), fill=(90, 150, 220))
    else:
        draw.line((40, 75, 60, 75), fill=(150, 60, 60), width=3)
    image = image.resize((round(100 / scale), round(100 / scale)), Image.Resampling.BILINEAR)
    return image.convert("L").convert("RGB") if grey else image


def _write_folder(root: Path, per_class: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for class_name in CLASSES:
        (root / class_name).mkdir(parents=True)
        for k in range(per_class):
            _face(class_name, SIDES[k % len(SIDES)], rng, grey=k == 0).save(
                root / class_name / f"{k:02d}.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("crops")
    train_dir = _write_folder(tmp / "train", per_class=10, seed=0)
    val_dir = _write_folder(tmp / "val", per_class=4, seed=1)
    checkpoint = tmp / "model.pt"
    result = CliRunner().invoke(app, [
        "train", str(train_dir), "--out", str(checkpoint), "--epochs", "1", "--size", "24",
        "--width", "8", "--batch-size", "8", "--workers", "0", "--threads", "1",
        "--val-dir", str(val_dir)])
    assert result.exit_code == 0, result.output
    return checkpoint, val_dir


def test_train_saves_a_complete_checkpoint(trained):
    checkpoint_path, val_dir = trained
    train_dir = val_dir.parent / "train"
    checkpoint = Checkpoint.load(checkpoint_path)
    assert checkpoint.class_names == CLASSES
    assert checkpoint.preset.size == 24
    assert checkpoint.arch_kwargs == {"width": 8}
    assert checkpoint.training["counts"] == {name: 10 for name in CLASSES}
    assert checkpoint.training["data_dirs"] == [f"{train_dir.parent.name}/train"]
    assert checkpoint.training["epochs"] == 1
    assert checkpoint.metrics["val"]["count"] == 12
    assert checkpoint.build()(torch.zeros(1, 3, 24, 24)).shape == (1, 3)


def test_evaluate_json_report(trained):
    checkpoint_path, val_dir = trained
    result = CliRunner().invoke(app, ["evaluate", str(checkpoint_path), str(val_dir), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["count"] == 12
    assert report["class_names"] == list(CLASSES)
    assert {name: row["support"] for name, row in report["per_class"].items()} == {
        name: 4 for name in CLASSES}
    assert np.array(report["confusion_matrix"]).sum(axis=1).tolist() == [4, 4, 4]
    sizes = report["slices"]["face_size_px"]
    assert {name: part["count"] for name, part in sizes.items()} == {
        "<16": 3, "16-32": 3, "32-64": 3, ">=64": 3}
    assert report["slices"]["colour"]["greyscale"]["count"] == 3
    # the report the checkpoint stores is the one evaluate reproduces
    stored = Checkpoint.load(checkpoint_path).metrics["val"]
    assert stored["confusion_matrix"] == report["confusion_matrix"]


def test_evaluate_reads_faces_mirrored_unless_told_not_to(trained):
    checkpoint_path, val_dir = trained

    def report(*args: str) -> dict:
        result = CliRunner().invoke(app, ["evaluate", str(checkpoint_path), str(val_dir),
                                          "--json", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    mirrored, plain = report(), report("--no-mirror")
    assert (mirrored["mirror_faces"], plain["mirror_faces"]) == (True, False)
    assert Checkpoint.load(checkpoint_path).metrics["val"]["mirror_faces"] is True
    # JPEG blocks and the drawing's pixel grid are not mirror-symmetric, so the two readings'
    # confidence differs: the network really ran plain
    assert mirrored["ece"] != plain["ece"]


def test_evaluate_table_output(trained):
    checkpoint_path, val_dir = trained
    result = CliRunner().invoke(app, ["evaluate", str(checkpoint_path), str(val_dir)])
    assert result.exit_code == 0, result.output
    assert "12 crops" in result.output
    assert "confusion matrix" in result.output
    assert "face_size_px <16" in result.output
