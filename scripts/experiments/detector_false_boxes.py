"""Where a detector's boxes land on the validation scenes: faces, duplicates, loose, background.

    python scripts/experiments/detector_false_boxes.py WEIGHTS [a,b,c]

Runs facenet-pytorch's MTCNN with WEIGHTS (a train-detector file) at min face 20, frames
enlarged 1.5x (as the shipped pipeline enlarges ~400 px scenes), keeps boxes with face
probability >= 0.9 and sorts them by their best IoU with a ground-truth face of the 80
validation scenes: tp (>= 0.5, first on that face), dup (>= 0.5, face taken), loose (0.3-0.5),
bg (< 0.1), other. Needs ../shared.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from facenet_pytorch import MTCNN

from worker.evaluation.scenes import load_scenes, read_split
from worker.training.detector import iou, load_rgb

SCENES = Path("../shared/datasets/kaggle-scenes-dev")
VAL = Path("worker/training/splits/kaggle_scenes_val.txt")
UPSCALE = 1.5


def category(best: float, taken: bool) -> str:
    if best >= 0.5:
        return "dup" if taken else "tp"
    if best >= 0.3:
        return "loose"
    return "bg" if best < 0.1 else "other"


def main() -> None:
    torch.set_num_threads(1)
    thresholds = [0.6, 0.8, 0.8]
    if len(sys.argv) > 2:
        thresholds = [float(x) for x in sys.argv[2].split(",")]
    mtcnn = MTCNN(keep_all=True, min_face_size=20, thresholds=thresholds, post_process=False)
    state = torch.load(sys.argv[1], weights_only=True)
    for name in ("pnet", "rnet", "onet"):
        if name in state:
            getattr(mtcnn, name).load_state_dict(state[name])
    counts: Counter[str] = Counter()
    for scene in load_scenes(SCENES / "annotations", SCENES / "images", read_split(VAL)):
        boxes, probs = mtcnn.detect(load_rgb(scene.image_path, UPSCALE))
        if boxes is None:
            continue
        boxes = np.asarray(boxes, np.float64) / UPSCALE
        probs = np.asarray(probs, np.float64)
        taken: set[int] = set()
        for k in np.argsort(-probs):
            if probs[k] < 0.9:
                continue
            overlap = iou(boxes[k], scene.xyxy) if len(scene.xyxy) else np.zeros(1)
            best = int(np.argmax(overlap))
            kind = category(float(overlap[best]), best in taken)
            if kind == "tp":
                taken.add(best)
            counts[kind] += 1
    print(sys.argv[1], thresholds, dict(counts))


if __name__ == "__main__":
    main()
