"""Synthetic stress slices of the validation scenes: greyscale, night-like, heavy compression.

Backs: the monochrome thresholds (MONO_THRESHOLDS, MONO_FACE_THRESHOLD), measured on the
greyscale slice.

    python ml/experiments/stress_scenes.py [--split SPLIT_FILE]

The data at hand has no night, infrared or heavily compressed CCTV footage with labels. This
script makes such versions of the 80 validation scenes, keeping their boxes, and runs the
whole shipped pipeline on each (1 torch thread):

- ``greyscale``: luma only, three equal channels (an IR camera's look without its glare);
- ``night``: greyscale, darkened (gamma 2.2 then x0.6), Gaussian sensor noise (sigma 6 of 255)
  and JPEG quality 60: a dim IR frame;
- ``compressed``: scaled to half size and back, JPEG quality 15 (a busy CCTV stream).

These are simulations, not footage: they show how each stage degrades, not what a real
night camera gives. Prints AP per class, face recall (all and by size), precision and MAE
for the originals and each slice. Needs ../shared.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from maskwatch.runtime import analysis_settings, models_for
from maskwatch.settings import get_settings
from ml.data.scenes import load_scenes, read_split
from ml.evaluation.run import evaluate, predict_scenes

SCENES = Path("../shared/datasets/kaggle-scenes-dev")
VAL = Path("ml/training/splits/kaggle_scenes_val.txt")


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def greyscale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.convert("L").convert("RGB")


def night(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    luma = np.asarray(image.convert("L"), np.float32) / 255.0
    dark = (luma ** 2.2) * 0.6 * 255.0 + rng.normal(0.0, 6.0, luma.shape)
    grey = Image.fromarray(np.clip(dark, 0, 255).astype(np.uint8)).convert("RGB")
    return _jpeg(grey, 60)


def compressed(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    small = image.resize((max(1, image.width // 2), max(1, image.height // 2)),
                         Image.Resampling.BILINEAR)
    return _jpeg(small.resize(image.size, Image.Resampling.BILINEAR), 15)


SLICES: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "greyscale": greyscale, "night": night, "compressed": compressed,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", type=Path, default=VAL)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = get_settings()
    analysis = analysis_settings(settings)
    models = models_for(settings, analysis)
    scenes = load_scenes(SCENES / "annotations", SCENES / "images", read_split(args.split), None)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="maskwatch-stress-") as tmp:
        variants = {"original": scenes}
        for name, transform in SLICES.items():
            rng = np.random.default_rng(0)
            folder = Path(tmp) / name
            folder.mkdir()
            changed = []
            for scene in scenes:
                out = folder / f"{scene.scene_id}.png"  # lossless: only the slice's own JPEG
                transform(Image.open(scene.image_path).convert("RGB"), rng).save(out)
                changed.append(replace(scene, image_path=out))
            variants[name] = changed
        for name, variant in variants.items():
            report = evaluate(variant, predict_scenes(variant, models, analysis),
                              models.classifier.class_names, bootstrap_rounds=0)
            faces = report["faces"]
            rows[name] = {
                "ap": {c: round(r["ap"], 3) for c, r in report["per_class"].items()},
                "recall": round(faces["recall"], 3),
                "recall_by_size": {k: v["recall"] and round(v["recall"], 3)
                                   for k, v in faces["recall_by_size"].items()},
                "recall_by_class": {k: v["recall"] and round(v["recall"], 3)
                                    for k, v in faces["recall_by_class"].items()},
                "precision": round(faces["precision"], 3),
                "unmasked_found_labelled": faces["label_confusion"]["without_mask"],
                "masked_found_labelled": faces["label_confusion"]["with_mask"],
                "mae": round(report["compliance"]["mae"], 4),
                "bias_detected": round(report["compliance"]["bias_detected"], 4),
            }
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
