"""Faces cut by the frame's edge: does padding the frame before detection find them?

    python scripts/experiments/edge_padding.py [--pad 0.1] [--mode reflect|constant]

Runs the whole pipeline (shipped settings) on the 80 validation scenes as shipped, then with
each frame padded by ``pad`` x its longer side on every edge (mirrored or mid-grey) before
the detector; boxes are shifted back and clipped to the frame; the classifier sees the
unpadded frame as always. Prints AP, recall for faces of 16 px and up that touch the
frame's edge (within 2 px) and those inside, precision, MAE and detector ms per scene.
Needs ../shared.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from maskwatch.runtime import analysis_settings, models_for
from maskwatch.settings import get_settings
from worker.evaluation.metrics import match_greedy, short_side
from worker.evaluation.run import evaluate, predict_scenes
from worker.evaluation.scenes import load_scenes, read_split
from worker.pipeline.config import DetectorConfig
from worker.pipeline.detect import FaceDetector, build_detector
from worker.pipeline.types import Detections

SCENES = Path("../shared/datasets/kaggle-scenes-dev")
VAL = Path("worker/training/splits/kaggle_scenes_val.txt")


class PaddedDetector:
    """The shipped detector on a padded frame, enlarged by the factor the unpadded frame gets
    (padding must not change how small frames are enlarged: that is a different experiment)."""

    def __init__(self, config: DetectorConfig, pad: float, mode: str) -> None:
        self.config, self.pad, self.mode = config, pad, mode
        self.detectors: dict[float, FaceDetector] = {}

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for frame in frames:
            h, w = frame.shape[:2]
            scale = round(self.config.scale_for(w, h), 6)
            if scale not in self.detectors:
                self.detectors[scale] = build_detector(
                    replace(self.config, upscale=scale, min_detect_side=0), torch.device("cpu"))
            inner = self.detectors[scale]
            p = int(round(self.pad * max(h, w)))
            if self.mode == "reflect":
                padded = np.pad(frame, ((p, p), (p, p), (0, 0)), mode="reflect")
            else:
                padded = np.pad(frame, ((p, p), (p, p), (0, 0)), constant_values=127)
            found = inner.detect([np.ascontiguousarray(padded)])[0]
            xyxy = found.xyxy - p
            xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w)
            xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h)
            keep = ((xyxy[:, 2] - xyxy[:, 0]) > 2) & ((xyxy[:, 3] - xyxy[:, 1]) > 2)
            out.append(Detections(xyxy[keep].astype(np.float32), found.confidence[keep],
                                  (found.landmarks - p)[keep]))
        return out


def edge_recall(scenes, predictions):  # type: ignore[no-untyped-def]
    counts = {"edge": [0, 0], "inside": [0, 0]}
    for scene, prediction in zip(scenes, predictions, strict=True):
        w, h = scene.size_wh
        m = match_greedy(prediction.xyxy, prediction.face_probs, scene.xyxy, scene.difficult, 0.5)
        for g, box in enumerate(scene.xyxy):
            if short_side(box[None])[0] < 16 or scene.difficult[g]:
                continue
            key = "edge" if min(box[0], box[1], w - box[2], h - box[3]) <= 2 else "inside"
            counts[key][0] += int(m.gt_matched[g])
            counts[key][1] += 1
    return {k: f"{a} of {b}" for k, (a, b) in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pad", type=float, default=0.1)
    parser.add_argument("--mode", choices=("reflect", "constant"), default="reflect")
    parser.add_argument("--split", type=Path, default=VAL)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = get_settings()
    analysis = analysis_settings(settings)
    models = models_for(settings, analysis)
    scenes = load_scenes(SCENES / "annotations", SCENES / "images", read_split(args.split), None)
    rows = {}
    for name, detector in (("shipped", models.detector),
                           (f"pad {args.pad} {args.mode}",
                            PaddedDetector(analysis.detector_config(), args.pad, args.mode))):
        predictions = predict_scenes(scenes, replace(models, detector=detector), analysis)
        report = evaluate(scenes, predictions, models.classifier.class_names, bootstrap_rounds=0)
        rows[name] = {
            "ap": {c: round(r["ap"], 4) for c, r in report["per_class"].items()},
            "recall": round(report["faces"]["recall"], 4),
            "precision": round(report["faces"]["precision"], 4),
            "recall_by_size": {k: v["recall"] and round(v["recall"], 3)
                               for k, v in report["faces"]["recall_by_size"].items()},
            "edge_recall_16px_up": edge_recall(scenes, predictions),
            "mae": round(report["compliance"]["mae"], 4),
            "detector_ms": round(report["timing"]["detector_ms_per_image"]),
        }
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
