"""Tiling for small faces: does a second pass over enlarged tiles find them, and at what cost?

    python scripts/experiments/tiling.py

Runs the whole pipeline (shipped settings) on the 80 validation scenes, then again with a
second pass per scene: 2x2 tiles overlapping by a quarter, each enlarged (2x or 3x the
original instead of the shipped 1.5x) and run through the same detector. Tile boxes (only
those under 24 px, or all) are mapped back and merged with the full pass by NMS at IoU 0.5,
as MergedDetector merges its detectors. Prints AP, recall by size, precision, compliance MAE
and seconds per scene (1 torch thread) for each. Needs ../shared.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import nms

from maskwatch.runtime import analysis_settings, models_for
from maskwatch.settings import get_settings
from worker.evaluation.run import evaluate, predict_scenes
from worker.evaluation.scenes import load_scenes, read_split
from worker.pipeline.detect import FaceDetector, build_detector
from worker.pipeline.types import Detections

SCENES = Path("../shared/datasets/kaggle-scenes-dev")
VAL = Path("worker/training/splits/kaggle_scenes_val.txt")
OVERLAP = 0.25


class TiledDetector:
    """The full-frame detector, plus the same detector on 2x2 overlapping enlarged tiles."""

    def __init__(self, full: FaceDetector, tiles: FaceDetector, max_side: float) -> None:
        self.full, self.tiles, self.max_side = full, tiles, max_side

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return [self._detect_one(frame, whole)
                for frame, whole in zip(frames, self.full.detect(frames), strict=True)]

    def _detect_one(self, frame: np.ndarray, whole: Detections) -> Detections:
        height, width = frame.shape[:2]
        tile_h, tile_w = int(height / (2 - OVERLAP)), int(width / (2 - OVERLAP))
        parts = [whole]
        for y in (0, height - tile_h):
            for x in (0, width - tile_w):
                tile = np.ascontiguousarray(frame[y:y + tile_h, x:x + tile_w])
                found = self.tiles.detect([tile])[0]
                side = np.minimum(found.xyxy[:, 2] - found.xyxy[:, 0],
                                  found.xyxy[:, 3] - found.xyxy[:, 1])
                keep = side < self.max_side
                shift = np.array([x, y], np.float32)
                parts.append(Detections(found.xyxy[keep] + np.tile(shift, 2),
                                        found.confidence[keep], found.landmarks[keep] + shift))
        xyxy = np.concatenate([p.xyxy for p in parts])
        confidence = np.concatenate([p.confidence for p in parts])
        landmarks = np.concatenate([p.landmarks for p in parts])
        keep = nms(torch.from_numpy(xyxy), torch.from_numpy(confidence), 0.5).numpy()
        return Detections(xyxy[keep], confidence[keep], landmarks[keep])


def main() -> None:
    torch.set_num_threads(1)
    scenes = load_scenes(SCENES / "annotations", SCENES / "images", read_split(VAL), None)
    settings = get_settings()
    analysis = analysis_settings(settings)
    models = models_for(settings, analysis)
    full = models.detector
    variants: list[tuple[str, FaceDetector]] = [("full pass only (shipped)", full)]
    for upscale, max_side in ((2.0, 24.0), (3.0, 24.0), (3.0, float("inf"))):
        tiles = build_detector(replace(analysis.detector_config(), upscale=upscale),
                               torch.device("cpu"))
        variants.append((f"+ tiles at {upscale:g}x, tile boxes under {max_side:g} px",
                         TiledDetector(full, tiles, max_side)))
    for label, detector in variants:
        models.detector = detector
        start = time.perf_counter()
        predictions = predict_scenes(scenes, models, analysis)
        seconds = (time.perf_counter() - start) / len(scenes)
        report = evaluate(scenes, predictions, models.classifier.class_names)
        ap = {name: round(v["ap"], 3) for name, v in report["per_class"].items()}
        faces, compliance = report["faces"], report["compliance"]
        by_size = {k: round(v["recall"], 3) for k, v in faces["recall_by_size"].items()}
        print(f"{label}: AP {ap}, recall {faces['recall']:.3f} {by_size}, "
              f"precision {faces['precision']:.3f}, MAE {compliance['mae']:.3f} "
              f"({compliance['mae_detected']:.3f}), {seconds:.2f} s/scene", flush=True)


if __name__ == "__main__":
    main()
