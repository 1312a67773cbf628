"""The model lab's one metrics module: crop classification (confusion, calibration, the crop
report) and scene detection (VOC matching, AP, operating points, face-size recall, compliance
error). Pure functions over numpy arrays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_calibration_error
from torchvision.ops import box_iou as torch_box_iou

from maskwatch.core.labels import Label

# Faces are binned by the short side of their box in source pixels: crops and scene faces alike.
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
    compliant = np.array([name == Label.WITH_MASK for name in class_names])
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


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of xyxy boxes (N, 4) and (M, 4), continuous pixel coordinates (no +1).

    torchvision's ``box_iou`` in float64; two empty boxes (0 / 0) give 0, not NaN.
    """
    a = torch.as_tensor(np.asarray(boxes_a, np.float64).reshape(-1, 4))
    b = torch.as_tensor(np.asarray(boxes_b, np.float64).reshape(-1, 4))
    return np.nan_to_num(torch_box_iou(a, b).numpy(), nan=0.0)


def short_side(xyxy: np.ndarray) -> np.ndarray:
    """(N,) the shorter side of each box (N, 4)."""
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    return np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def size_bin(sides: np.ndarray) -> np.ndarray:
    """(N,) index into FACE_SIZE_BINS of each face's short side."""
    edges = np.array([low for _, low, _ in FACE_SIZE_BINS[1:]])
    return np.searchsorted(edges, np.asarray(sides, np.float64), side="right")


@dataclass(frozen=True)
class Matches:
    """The outcome of matching one image's predictions to its ground truth."""

    true_positive: np.ndarray  # (N,) bool, per prediction in input order
    ignored: np.ndarray  # (N,) bool: matched a difficult box, counts neither way
    gt_matched: np.ndarray  # (M,) bool
    matched_gt: np.ndarray  # (N,) int64: the box each true positive took, else -1


def match_greedy(
    pred_xyxy: np.ndarray,
    pred_score: np.ndarray,
    gt_xyxy: np.ndarray,
    gt_ignore: np.ndarray | None = None,
    iou_threshold: float = 0.5,
) -> Matches:
    """Pascal VOC matching: predictions in descending score, each to its highest-IoU box.

    A prediction whose best box has IoU >= ``iou_threshold`` is a true positive if that box is
    still free, ignored if the box is difficult (``gt_ignore``), and a false positive if the
    box was already taken (a duplicate; as in the VOC devkit it does not fall back to its
    second-best box). Equal scores keep input order.
    """
    scores = np.asarray(pred_score, np.float64).reshape(-1)
    gt_count = len(np.asarray(gt_xyxy).reshape(-1, 4))
    ignore = np.zeros(gt_count, bool) if gt_ignore is None else np.asarray(gt_ignore, bool)
    true_positive = np.zeros(len(scores), bool)
    ignored = np.zeros(len(scores), bool)
    gt_matched = np.zeros(gt_count, bool)
    matched_gt = np.full(len(scores), -1, np.int64)
    if gt_count == 0 or len(scores) == 0:
        return Matches(true_positive, ignored, gt_matched, matched_gt)
    iou = box_iou(pred_xyxy, gt_xyxy)
    for index in np.argsort(-scores, kind="stable"):
        best = int(np.argmax(iou[index]))
        if iou[index, best] < iou_threshold:
            continue
        if ignore[best]:
            ignored[index] = True
        elif not gt_matched[best]:
            gt_matched[best] = True
            true_positive[index] = True
            matched_gt[index] = best
    return Matches(true_positive, ignored, gt_matched, matched_gt)


def precision_recall_curve(
    scores: np.ndarray, true_positive: np.ndarray, num_gt: int
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall (each (N,)) after each prediction in descending score order."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    hits = np.asarray(true_positive, bool)[order]
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    recall = tp / num_gt if num_gt else np.zeros(len(hits))
    return precision, recall


def voc_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC 2010+ all-point AP: area under the precision envelope, summed where recall rises."""
    mrec = np.concatenate([[0.0], np.asarray(recall, np.float64), [1.0]])
    mpre = np.concatenate([[0.0], np.asarray(precision, np.float64), [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    rises = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[rises + 1] - mrec[rises]) * mpre[rises + 1]))


def coco_ap_101(precision: np.ndarray, recall: np.ndarray) -> float:
    """COCO AP: the precision envelope sampled at recall 0, 0.01, ..., 1 and averaged."""
    envelope = np.maximum.accumulate(np.asarray(precision, np.float64)[::-1])[::-1]
    envelope = np.append(envelope, 0.0)  # recall levels never reached sample precision 0
    index = np.searchsorted(np.asarray(recall, np.float64), np.linspace(0, 1, 101), side="left")
    return float(envelope[index].mean())


@dataclass(frozen=True)
class OperatingPoint:
    """Precision, recall and F1 when keeping predictions scored >= ``threshold``."""

    threshold: float | None  # None: every prediction kept (the pipeline's own output)
    precision: float
    recall: float
    f1: float
    predictions: int
    true_positives: int

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _point(
    threshold: float | None, true_positives: int, predictions: int, num_gt: int
) -> OperatingPoint:
    precision = true_positives / predictions if predictions else 0.0
    recall = true_positives / num_gt if num_gt else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return OperatingPoint(threshold, precision, recall, f1, predictions, true_positives)


def operating_point(true_positive: np.ndarray, num_gt: int) -> OperatingPoint:
    """Precision/recall of all predictions as given; 0 where undefined."""
    hits = np.asarray(true_positive, bool)
    return _point(None, int(hits.sum()), len(hits), num_gt)


def best_f1(scores: np.ndarray, true_positive: np.ndarray, num_gt: int) -> OperatingPoint:
    """The score threshold with the highest F1 (ties: the higher threshold).

    Thresholds are the distinct prediction scores, so every point is reachable with
    ``score >= threshold``; with no predictions or no ground truth there is no cut (None).
    """
    scores = np.asarray(scores, np.float64).reshape(-1)
    if len(scores) == 0 or num_gt == 0:  # nothing to find, or nothing found: no cut helps
        return _point(None, int(np.sum(true_positive)), len(scores), num_gt)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    tp = np.cumsum(np.asarray(true_positive, bool)[order])
    # Only the last prediction of each run of equal scores is a reachable cut.
    last_of_run = np.append(sorted_scores[1:] != sorted_scores[:-1], True)
    best: OperatingPoint | None = None
    for end in np.flatnonzero(last_of_run):
        point = _point(float(sorted_scores[end]), int(tp[end]), int(end) + 1, num_gt)
        if best is None or point.f1 > best.f1:
            best = point
    assert best is not None
    return best


@dataclass(frozen=True)
class ComplianceError:
    """Per-scene compliance ratio error over scenes with ground-truth faces.

    ``mae`` scores a scene where the pipeline found no face at the worst error any answer
    could have had, max(r, 1 - r): an unanswered scene is never a free pass.
    ``mae_detected`` is the mean over the scenes where the pipeline found faces only, and
    ``bias_detected`` the mean of predicted - true there (< 0: compliance under-reported).
    """

    mae: float | None
    mae_detected: float | None
    bias_detected: float | None
    scenes: int  # with ground-truth faces
    scenes_missed: int  # of those, where the pipeline found no face
    scenes_without_faces: int  # no ground-truth face: skipped

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def scene_compliance_errors(
    truth: Sequence[float | None], predicted: Sequence[float | None]
) -> list[float | None]:
    """Each scene's absolute compliance error, as ``compliance_error`` counts it.

    None for a scene without ground-truth faces (not scored); max(r, 1 - r) where the
    pipeline found no face.
    """
    errors: list[float | None] = []
    for true_ratio, predicted_ratio in zip(truth, predicted, strict=True):
        if true_ratio is None:
            errors.append(None)
        elif predicted_ratio is None:
            errors.append(max(true_ratio, 1.0 - true_ratio))
        else:
            errors.append(abs(predicted_ratio - true_ratio))
    return errors


def compliance_error(
    truth: Sequence[float | None], predicted: Sequence[float | None]
) -> ComplianceError:
    """MAE of per-scene compliance ratios (None = no face in that scene)."""
    errors = [e for e in scene_compliance_errors(truth, predicted) if e is not None]
    skipped = sum(t is None for t in truth)
    signed = [p - t for t, p in zip(truth, predicted, strict=True)
              if t is not None and p is not None]  # predicted - true, scenes with faces found
    detected = np.abs(signed)
    return ComplianceError(
        mae=float(np.mean(errors)) if errors else None,
        mae_detected=float(np.mean(detected)) if signed else None,
        bias_detected=float(np.mean(signed)) if signed else None,
        scenes=len(errors),
        scenes_missed=len(errors) - len(signed),
        scenes_without_faces=skipped,
    )


@dataclass(frozen=True)
class SceneHits:
    """One scene's predictions of one class after matching: what AP is built from."""

    scores: np.ndarray  # (N,) predictions that count (not on difficult boxes)
    true_positive: np.ndarray  # (N,) bool
    num_gt: int  # ground-truth boxes of the class that count


def pooled_ap(scenes: Sequence[SceneHits]) -> float | None:
    """VOC AP over several scenes' predictions pooled (None: no ground truth at all)."""
    num_gt = sum(s.num_gt for s in scenes)
    if not num_gt:
        return None
    scores = np.concatenate([s.scores for s in scenes]) if scenes else np.zeros(0)
    hits = np.concatenate([s.true_positive for s in scenes]) if scenes else np.zeros(0, bool)
    return voc_ap(*precision_recall_curve(scores, hits, num_gt))


def scene_bootstrap(
    class_hits: Mapping[str, Sequence[SceneHits]],
    compliance_errors: Sequence[float | None],
    faces_found: Sequence[tuple[int, int]],
    rounds: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, object]:
    """Percentile intervals of each class's AP, face recall and compliance MAE.

    Scenes are drawn with replacement ``rounds`` times (the scene is the unit: faces of one
    scene share lighting, camera and crowd, so they are not independent draws). Every list
    holds one entry per scene, in the same order; ``faces_found`` is (found, ground truth)
    per scene, ``compliance_errors`` None where a scene has no face to score. A draw where a
    figure is undefined (no ground truth of a class) is left out of that figure's interval.
    Fixed ``seed``: the same report gives the same intervals.
    """
    counts = {len(v) for v in class_hits.values()} | {len(compliance_errors), len(faces_found)}
    if len(counts) != 1:
        raise ValueError("every per-scene list must hold one entry per scene")
    n = counts.pop()
    if rounds < 1 or n == 0:
        raise ValueError("a bootstrap needs scenes and at least one round")
    rng = np.random.default_rng(seed)
    errors = np.array([np.nan if e is None else e for e in compliance_errors], np.float64)
    found = np.array(faces_found, np.float64).reshape(n, 2)
    draws: dict[str, list[float]] = {f"ap/{name}": [] for name in class_hits}
    draws["face_recall"], draws["mae"] = [], []
    for _ in range(rounds):
        pick = rng.integers(0, n, n)
        for name, hits in class_hits.items():
            ap = pooled_ap([hits[i] for i in pick])
            if ap is not None:
                draws[f"ap/{name}"].append(ap)
        total = found[pick].sum(axis=0)
        if total[1]:
            draws["face_recall"].append(float(total[0] / total[1]))
        picked_errors = errors[pick][~np.isnan(errors[pick])]
        if len(picked_errors):
            draws["mae"].append(float(picked_errors.mean()))
    tail = 100 * (1 - level) / 2

    def interval(values: list[float]) -> list[float] | None:
        if not values:
            return None
        low, high = np.percentile(values, [tail, 100 - tail])
        return [float(low), float(high)]

    return {
        "level": level,
        "rounds": rounds,
        "ap": {name: interval(draws[f"ap/{name}"]) for name in class_hits},
        "face_recall": interval(draws["face_recall"]),
        "mae": interval(draws["mae"]),
    }


def torchmetrics_ap50(
    predictions: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | Sequence[int]]],
    targets: Sequence[tuple[np.ndarray, np.ndarray | Sequence[int]]],
    num_classes: int,
) -> dict[int, float | None]:
    """Per-class AP at IoU 0.5 from torchmetrics (pycocotools backend): the cross-check.

    This is COCO's AP, not VOC's: 101-point interpolated, each prediction matched to the
    best still-free box, at most 100 predictions per image (the highest scored; torchmetrics
    reports -1 for per-class AP with any other cap). Difficult boxes must be left out of
    ``targets`` by the caller.

    Args:
        predictions: per image (xyxy (N, 4), scores (N,), class indices (N,)).
        targets: per image (xyxy (M, 4), class indices (M,)).
        num_classes: classes are 0..num_classes-1; absent classes map to None.
    """
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(
        box_format="xyxy",
        iou_type="bbox",
        iou_thresholds=[0.5],
        class_metrics=True,
        backend=_coco_backend(),
    )

    def boxes(xyxy: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(xyxy, np.float32).reshape(-1, 4))

    def classes(values: np.ndarray | Sequence[int]) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values, np.int64).reshape(-1))

    metric.update(
        [
            {
                "boxes": boxes(b),
                "scores": torch.as_tensor(np.asarray(s, np.float32).reshape(-1)),
                "labels": classes(c),
            }
            for b, s, c in predictions
        ],
        [{"boxes": boxes(b), "labels": classes(c)} for b, c in targets],
    )
    result = metric.compute()
    per_class: dict[int, float | None] = dict.fromkeys(range(num_classes))
    observed = result["classes"].reshape(-1).tolist()
    values = result["map_per_class"].reshape(-1).tolist()
    for class_index, value in zip(observed, values, strict=True):
        if 0 <= class_index < num_classes:
            per_class[int(class_index)] = float(value) if value >= 0 else None
    return per_class


def _coco_backend() -> Literal["pycocotools", "faster_coco_eval"]:
    try:
        import faster_coco_eval  # noqa: F401
    except ImportError:
        return "pycocotools"
    return "faster_coco_eval"
