"""Masked faces by how the mask looks (dark, printed, plain): found and labelled right?

    python scripts/experiments/mask_look_slice.py [WEIGHTS [CHECKPOINT]]

Runs the whole pipeline (shipped settings; detector WEIGHTS and classifier CHECKPOINT when
given) on the 80 validation scenes and, for the masked faces of 16 px and up tagged in
scripts/experiments/data/kaggle_val_mask_look.txt (untagged ones are plain), counts how many
an output box matches at IoU >= 0.5 (found) and how many of those are labelled with_mask or
incorrect_mask (compliant or not, the box shows a mask). Needs ../shared.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np

from maskwatch.runtime import analysis_settings, models_for
from maskwatch.settings import get_settings
from worker.evaluation.scenes import load_scenes, read_split
from worker.images import classify_image
from worker.training.detector import iou

SCENES = Path("../shared/datasets/kaggle-scenes-dev")
VAL = Path("worker/training/splits/kaggle_scenes_val.txt")
TAGS = Path(__file__).resolve().parent / "data" / "kaggle_val_mask_look.txt"
MASKED = ("with_mask", "incorrect_mask")


def read_tags() -> dict[tuple[str, int], set[str]]:
    tags: dict[tuple[str, int], set[str]] = {}
    for line in TAGS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            scene, index, tag = line.split()
            tags.setdefault((scene, int(index)), set()).add(tag)
    return tags


def main() -> None:
    settings = get_settings()
    if len(sys.argv) > 2:
        settings = settings.model_copy(update={"checkpoint": Path(sys.argv[2])})
    analysis = analysis_settings(settings,
                                 detector_weights=sys.argv[1] if len(sys.argv) > 1 else None)
    models = models_for(settings, analysis)
    tags = read_tags()
    counts: dict[str, Counter[str]] = {}
    for scene in load_scenes(SCENES / "annotations", SCENES / "images", read_split(VAL)):
        record = classify_image(scene.image_path, models, analysis).record
        boxes = np.array([[f.x1, f.y1, f.x2, f.y2] for f in record.detections],
                         np.float64).reshape(-1, 4)
        labels = [f.label for f in record.detections]
        for index, (box, label) in enumerate(zip(scene.xyxy, scene.labels, strict=True)):
            face = np.asarray(box, np.float64)
            if label not in MASKED or min(face[2] - face[0], face[3] - face[1]) < 16:
                continue
            overlap = iou(face, boxes) if len(boxes) else np.zeros(1)
            best = int(np.argmax(overlap))
            for tag in tags.get((scene.scene_id, index), {"plain"}):
                row = counts.setdefault(tag, Counter())
                row["faces"] += 1
                if overlap[best] >= 0.5:
                    row["found"] += 1
                    row["labelled masked"] += labels[best] in MASKED
    for tag, row in sorted(counts.items()):
        print(f"{tag:8s} {row['faces']:4d} faces, found {row['found']:4d}, "
              f"labelled masked {row['labelled masked']:4d}")


if __name__ == "__main__":
    main()
