"""Model-card experiment: chandrikadeb7 val faces re-cut from the original photos with a flat
off-frame fill (0 = black as at inference, 128 = grey), to measure the classifier on faces whose
box leaves the photo (docs/model-card.md: the "cd7 black fill" and grey-fill figures).

Usage, after `maskwatch prepare-data ../shared --out var/crops` (which fills var/cache):
    python scripts/experiments/fill_val_crops.py 0     # -> var/crops/chandrikadeb7-fill0/val
    maskwatch evaluate worker/models/mask_cnn.pt var/crops/chandrikadeb7-fill0/val
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from worker.pipeline.classify import CropPreset, crop_faces, square_boxes
from worker.pipeline.types import Detections
from worker.training.crops import MAX_CROP_SIDE
from worker.training.data import load_rgb
from worker.training.prepare import PrepareConfig, pick_face

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
# The detection cache of the detector configuration recorded in the crop manifests.
CACHE_FILE = Path("var/cache/detections-5b8620959d.json")


def main(fill: int) -> None:
    out = Path(f"var/crops/chandrikadeb7-fill{fill}/val")
    config = PrepareConfig()
    cache = json.loads(CACHE_FILE.read_text())
    written = off_frame = 0
    for label in ("with_mask", "without_mask"):
        (out / label).mkdir(parents=True, exist_ok=True)
        for crop_file in sorted(Path("var/crops/chandrikadeb7/val", label).glob("*.jpg")):
            source = DATASETS / "chandrikadeb7-faces" / label / crop_file.name
            entry = cache[str(source.relative_to(DATASETS))]
            found = Detections(
                np.asarray(entry["xyxy"], np.float32).reshape(-1, 4),
                np.asarray(entry["confidence"], np.float32),
                np.asarray(entry["landmarks"], np.float32).reshape(-1, 5, 2),
            )
            index, _ = pick_face(found, config.comparable_face_ratio)
            rgb = load_rgb(source)
            pad = 2 * max(rgb.shape[:2])
            rgb = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), constant_values=fill)
            box = found.xyxy[index].copy() + pad
            square = square_boxes(box[None], config.margin)[0]
            height, width = rgb.shape[:2]
            off_frame += bool(
                square[0] < pad
                or square[1] < pad
                or square[2] > width - pad
                or square[3] > height - pad
            )
            side = int(min(max(round(float(square[2] - square[0])), 4), MAX_CROP_SIDE))
            preset = CropPreset(size=side, margin=config.margin)
            crop = crop_faces(torch.from_numpy(rgb), box[None], preset)[0]
            pixels = crop.round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
            Image.fromarray(pixels).save(out / label / crop_file.name, quality=95)
            written += 1
    print(written, "crops,", off_frame, "with the square leaving the photo")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
