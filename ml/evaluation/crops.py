"""Crop-level evaluation of a classifier checkpoint through the inference code path."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml.data.crops import crop_face_box, face_size_px
from ml.data.folders import (
    FALLBACK_CLASS,
    folder_label,
    is_greyscale,
    label_indices,
    list_crops,
    load_rgb,
)
from ml.metrics import build_report
from worker.pipeline.classify import Checkpoint, CNNMaskClassifier

logger = logging.getLogger(__name__)


def evaluate_checkpoint(checkpoint: Checkpoint, data_dirs: Sequence[Path],
                        device: torch.device | None = None,
                        on_item: Callable[[], None] | None = None,
                        mirror: bool = True) -> dict[str, Any]:
    """Score a checkpoint on class-folder crops and build the full report.

    Each crop is treated as the square-with-margin of a face: its face box (the crop with the
    preset margin removed) goes through ``CNNMaskClassifier.classify``, which grows it back to
    the whole crop and resamples it with ``crop_faces``, exactly as on a video frame. Training
    feeds crops through the same function (``crop_to_input``), so the three paths agree.
    Folder classes the checkpoint lacks are scored as their ``FALLBACK_CLASS``.
    """
    classifier = CNNMaskClassifier(checkpoint, device or torch.device("cpu"), mirror)
    files = list_crops(data_dirs)
    targets = label_indices(files, checkpoint.class_names)
    margin = checkpoint.preset.margin
    probabilities = np.zeros((len(files), len(checkpoint.class_names)), np.float32)
    face_px = np.zeros(len(files), np.float32)
    greyscale = np.zeros(len(files), bool)
    for k, crop in enumerate(files):
        rgb = load_rgb(crop.path)
        probabilities[k] = classifier.classify(rgb, crop_face_box(rgb, margin)).probabilities[0]
        face_px[k] = face_size_px(max(rgb.shape[:2]), margin)
        greyscale[k] = is_greyscale(rgb)
        if on_item is not None:
            on_item()
    report = build_report(probabilities, targets, checkpoint.class_names, face_px, greyscale,
                          [crop.folder for crop in files])
    folder_classes = {crop.class_name for crop in files}
    report["label_mapping"] = {name: FALLBACK_CLASS[name] for name in sorted(folder_classes)
                               if name not in checkpoint.class_names}
    report["data_dirs"] = [folder_label(d) for d in data_dirs]
    report["mirror_faces"] = mirror
    return report


def measure_latency(checkpoint: Checkpoint, batch_sizes: Sequence[int] = (1, 8),
                    threads: int = 1, seconds: float = 2.0, face_px: int = 30,
                    mirror: bool = True) -> dict[str, float]:
    """CPU milliseconds per face of ``CNNMaskClassifier.classify`` (crop + network + softmax).

    Faces of ``face_px`` sit in a 640x360 frame; each batch size runs for about ``seconds``.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        classifier = CNNMaskClassifier(checkpoint, torch.device("cpu"), mirror)
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
        result = {}
        for batch in batch_sizes:
            corners = rng.uniform(0, [640 - face_px, 360 - face_px], (batch, 2))
            boxes = np.concatenate([corners, corners + face_px], axis=1).astype(np.float32)
            for _ in range(5):
                classifier.classify(frame, boxes)
            runs, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                classifier.classify(frame, boxes)
                runs += 1
            result[f"batch_{batch}"] = (time.perf_counter() - start) * 1000 / (runs * batch)
        return result
    finally:
        torch.set_num_threads(previous)
