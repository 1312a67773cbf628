"""Example-image strips for the model card's failure modes (docs/img/).

Backs: the model card's failure-mode images (docs/img/), shipped with the card.

    python ml/experiments/failure_strips.py misread CHECKPOINT CLASS_DIR OUT.jpg
    python ml/experiments/failure_strips.py missed WEIGHTS OTHER_WEIGHTS OUT.jpg

``misread``: the crops of one class folder (e.g. var/crops/kaggle/val/without_mask, made by
``maskwatch prepare-data``) that CHECKPOINT labels as another class, printed with their
probabilities, side by side at 96 px. ``missed``: the with_mask faces of the 80 validation
scenes that the detector with WEIGHTS does not find (IoU < 0.5, after the face threshold),
counted by size and by whether OTHER_WEIGHTS finds them; the first 16 of 16 px and up are
drawn, each with 25 % context per side. Needs ../shared; scratch output, not a test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from maskwatch.runtime import analysis_settings, models_for
from maskwatch.settings import get_settings
from ml.data.scenes import load_scenes, read_split
from ml.evaluation.crops import crop_face_box, load_rgb
from ml.training.detector import iou
from worker.pipeline.classify import Checkpoint, CNNMaskClassifier

SCENES = Path("../shared/datasets/kaggle-scenes-dev")
VAL = Path("ml/training/splits/kaggle_scenes_val.txt")
TILE = 96


def save_strip(tiles: list[np.ndarray], out: Path) -> None:
    if tiles:
        Image.fromarray(np.concatenate(tiles, axis=1)).save(out, quality=85)
        print(f"{out}: {len(tiles)} tiles")


def misread(checkpoint: Path, class_dir: Path, out: Path) -> None:
    loaded = Checkpoint.load(checkpoint)
    classifier = CNNMaskClassifier(loaded, torch.device("cpu"))
    tiles: list[np.ndarray] = []
    for path in sorted(class_dir.iterdir()):
        rgb = load_rgb(path)
        probs = classifier.classify(rgb, crop_face_box(rgb, loaded.preset.margin)).probabilities[0]
        label = loaded.class_names[int(probs.argmax())]
        if label != class_dir.name:
            print(path.name, label, [round(float(p), 2) for p in probs], f"{rgb.shape[1]} px crop")
            tiles.append(np.asarray(Image.fromarray(rgb).resize((TILE, TILE))))
    save_strip(tiles, out)


def missed(weights: str, other: str, out: Path) -> None:
    settings = get_settings()
    detectors = [models_for(settings, analysis_settings(settings, detector_weights=w)).detector
                 for w in (weights, other)]
    scenes = load_scenes(SCENES / "annotations", SCENES / "images", read_split(VAL))
    tiles: list[np.ndarray] = []
    sizes: list[float] = []
    found_by_other = 0
    for scene in scenes:
        frame = np.asarray(Image.open(scene.image_path).convert("RGB"))
        found = [d.detect([frame])[0].xyxy.astype(np.float64) for d in detectors]
        for box, label in zip(scene.xyxy, scene.labels, strict=True):
            face = np.asarray(box, np.float64)
            hit = [len(f) > 0 and iou(face, f).max() >= 0.5 for f in found]
            if label != "with_mask" or hit[0]:
                continue
            short, long = sorted((face[2] - face[0], face[3] - face[1]))
            sizes.append(short)
            found_by_other += hit[1]
            if short >= 16 and len(tiles) < 16:
                cx, cy, half = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2, 0.75 * long
                crop = Image.fromarray(frame).crop(
                    (int(cx - half), int(cy - half), int(cx + half), int(cy + half)))
                tiles.append(np.asarray(crop.resize((TILE, TILE))))
    print(f"with_mask faces missed by {weights}: {len(sizes)} "
          f"({sum(s < 16 for s in sizes)} under 16 px); found by {other}: {found_by_other}")
    save_strip(tiles, out)


if __name__ == "__main__":
    kind, first, second, target = sys.argv[1:5]
    if kind == "misread":
        misread(Path(first), Path(second), Path(target))
    else:
        missed(first, second, Path(target))
