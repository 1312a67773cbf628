"""Classification metrics as pure functions, and the evaluation report built from them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_calibration_error

from worker.pipeline.types import CLASS_WITH_MASK

FACE_SIZE_BINS: tuple[tuple[str, float, float], ...] = (
    ("<16", 0.0, 16.0), ("16-32", 16.0, 32.0), ("32-64", 32.0, 64.0), (">=64", 64.0, np.inf))
ECE_BINS = 15


def confusion_matrix(targets: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts; rows are true classes, columns predicted classes."""
    targets = np.asarray(targets, np.int64)
    predictions = np.asarray(predictions, np.int64)
    flat = np.bincount(targets * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros(len(numerator), np.float64),
                     where=denominator > 0)


def precision_recall_f1(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 (each (C,)); 0 where undefined (no predictions/truth)."""
    matrix = np.asarray(matrix, np.float64)
    true_positive = np.diag(matrix)
    precision = _safe_ratio(true_positive, matrix.sum(axis=0))
    recall = _safe_ratio(true_positive, matrix.sum(axis=1))
    f1 = _safe_ratio(2 * precision * recall, precision + recall)
    return precision, recall, f1


def accuracy(matrix: np.ndarray) -> float:
    total = float(np.sum(matrix))
    return float(np.trace(matrix)) / total if total else 0.0


def balanced_accuracy(matrix: np.ndarray) -> float:
    """Mean recall over the classes that occur (rows with support)."""
    matrix = np.asarray(matrix, np.float64)
    support = matrix.sum(axis=1)
    present = support > 0
    if not present.any():
        return 0.0
    return float(np.mean(np.diag(matrix)[present] / support[present]))


def expected_calibration_error(probabilities: np.ndarray, targets: np.ndarray,
                               bins: int = ECE_BINS) -> float:
    """Top-label ECE (L1, equal-width confidence bins), via torchmetrics."""
    if len(targets) == 0:
        return 0.0
    probs = torch.as_tensor(np.asarray(probabilities, np.float32))
    return float(multiclass_calibration_error(
        probs, torch.as_tensor(np.asarray(targets, np.int64)), num_classes=probs.shape[1],
        n_bins=bins, norm="l1"))


def face_size_bin(face_px: float) -> str:
    for name, low, high in FACE_SIZE_BINS:
        if low <= face_px < high:
            return name
    raise ValueError(f"face size {face_px} px")


def summary(matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy and per-class P/R/F1/support of one confusion matrix."""
    precision, recall, f1 = precision_recall_f1(matrix)
    support = np.asarray(matrix).sum(axis=1)
    return {
        "count": int(np.sum(matrix)),
        "accuracy": accuracy(matrix),
        "balanced_accuracy": balanced_accuracy(matrix),
        "per_class": {
            name: {"precision": float(precision[k]), "recall": float(recall[k]),
                   "f1": float(f1[k]), "support": int(support[k])}
            for k, name in enumerate(class_names)
        },
    }


def compliance_matrix(matrix: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """Collapse a confusion matrix to 2x2: with_mask vs not compliant (every other class)."""
    compliant = np.array([name == CLASS_WITH_MASK for name in class_names])
    groups = [compliant, ~compliant]
    return np.array([[matrix[np.ix_(rows, cols)].sum() for cols in groups] for rows in groups])


def build_report(probabilities: np.ndarray, targets: np.ndarray, class_names: Sequence[str],
                 face_px: np.ndarray, greyscale: np.ndarray,
                 folders: Sequence[str]) -> dict[str, Any]:
    """The full evaluation report: overall metrics, confusion matrix, ECE and slices.

    Args:
        probabilities: (N, C) softmax outputs.
        targets: (N,) true class indices.
        class_names: the C class names.
        face_px: (N,) face side in source pixels (for the size slices).
        greyscale: (N,) whether each crop is grey (IR-like).
        folders: (N,) the data dir each crop came from.
    """
    probabilities = np.asarray(probabilities, np.float32).reshape(len(targets), len(class_names))
    predictions = probabilities.argmax(axis=1) if len(targets) else np.zeros(0, np.int64)
    num_classes = len(class_names)
    matrix = confusion_matrix(targets, predictions, num_classes)
    binary = compliance_matrix(matrix, class_names)

    def slice_summary(keep: np.ndarray) -> dict[str, Any]:
        part = confusion_matrix(targets[keep], predictions[keep], num_classes)
        result = summary(part, class_names)
        del result["per_class"]
        result["support"] = dict(zip(class_names, part.sum(axis=1).tolist(), strict=True))
        result["recall"] = dict(zip(class_names, precision_recall_f1(part)[1].tolist(),
                                    strict=True))
        return result

    bins = np.array([face_size_bin(float(px)) for px in face_px])
    folder_array = np.array(list(folders))
    slices: dict[str, dict[str, Any]] = {
        "face_size_px": {name: slice_summary(bins == name) for name, _, _ in FACE_SIZE_BINS},
        "colour": {"greyscale": slice_summary(np.asarray(greyscale, bool)),
                   "colour": slice_summary(~np.asarray(greyscale, bool))},
    }
    if len(set(folders)) > 1:
        slices["folder"] = {name: slice_summary(folder_array == name)
                            for name in sorted(set(folders))}
    return {
        "class_names": list(class_names),
        **summary(matrix, class_names),
        "confusion_matrix": matrix.tolist(),
        "ece": expected_calibration_error(probabilities, targets),
        "ece_bins": ECE_BINS,
        "compliance": {
            "accuracy": accuracy(binary),
            "balanced_accuracy": balanced_accuracy(binary),
            "confusion_matrix": binary.tolist(),
        },
        "slices": slices,
    }
