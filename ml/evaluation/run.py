"""Run the whole image pipeline over annotated scenes and score it against their boxes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from maskwatch.core.counts import compliance_ratio
from maskwatch.core.labels import CLASS_NOT_FACE, MASK_LABELS, Label
from maskwatch.core.records import FaceRecord, FrameRecord
from ml.data.folders import FALLBACK_CLASS
from ml.data.scenes import Scene
from ml.metrics import (
    FACE_SIZE_BINS,
    Matches,
    SceneHits,
    best_f1,
    compliance_error,
    match_greedy,
    operating_point,
    pooled_ap,
    precision_recall_curve,
    scene_bootstrap,
    scene_compliance_errors,
    short_side,
    size_bin,
    torchmetrics_ap50,
    voc_ap,
)
from worker.images import classify_image
from worker.pipeline.analyze import AnalysisSettings, Models
from worker.pipeline.detect import FaceDetector
from worker.pipeline.types import Detections

logger = logging.getLogger(__name__)

IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class ScenePrediction:
    """The pipeline's answer for one scene and the wall time it took."""

    scene_id: str
    record: FrameRecord  # boxes in the image's own pixels
    seconds: float  # classify_image, decoding included
    detect_seconds: float  # of which in the face detector

    @property
    def xyxy(self) -> np.ndarray:  # (N, 4) float64
        faces = self.record.detections
        return np.array([[f.x1, f.y1, f.x2, f.y2] for f in faces], np.float64).reshape(-1, 4)

    @property
    def labels(self) -> list[str]:
        return [f.label for f in self.record.detections]

    @property
    def scores(self) -> np.ndarray:  # (N,) face_prob x label probability
        return np.array([f.score for f in self.record.detections], np.float64)

    @property
    def face_probs(self) -> np.ndarray:  # (N,)
        return np.array([f.face_prob for f in self.record.detections], np.float64)


def predict_scenes(
    scenes: Sequence[Scene],
    models: Models,
    settings: AnalysisSettings,
    on_scene: Callable[[Scene], None] | None = None,
) -> list[ScenePrediction]:
    """classify_image on every scene, in order, timing each call.

    The first scene is run once untimed beforehand, so that one-off start-up costs (lazy
    initialisation in torch and the models) do not count as per-image time.
    """
    detector = _TimedDetector(models.detector)
    timed = replace(models, detector=detector)
    if scenes:
        classify_image(scenes[0].image_path, timed, settings)
    predictions = []
    for scene in scenes:
        detector.seconds = 0.0
        started = time.perf_counter()
        result = classify_image(scene.image_path, timed, settings)
        predictions.append(
            ScenePrediction(
                scene.scene_id, result.record, time.perf_counter() - started, detector.seconds
            )
        )
        logger.debug(
            "%s: %d face(s) in %.0f ms",
            scene.scene_id,
            result.record.faces,
            1000 * predictions[-1].seconds,
        )
        if on_scene is not None:
            on_scene(scene)
    return predictions


class _TimedDetector:
    """A FaceDetector that adds up the wall time spent in the one it wraps."""

    def __init__(self, inner: FaceDetector) -> None:
        self.inner = inner
        self.seconds = 0.0

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        started = time.perf_counter()
        try:
            return self.inner.detect(frames)
        finally:
            self.seconds += time.perf_counter() - started


def keep_face_prob(prediction: ScenePrediction, threshold: float) -> ScenePrediction:
    """The prediction a higher ``face_threshold`` would have given (the detector's last filter).

    Exact (up to face_prob's rounding to 4 decimals in FrameRecord), because MTCNNDetector
    drops faces below face_threshold after detection and each crop is classified on its
    own; only the timing is that of the run.
    """
    return with_faces(
        prediction, [f for f in prediction.record.detections if f.face_prob >= threshold]
    )


def with_faces(prediction: ScenePrediction, faces: list[FaceRecord]) -> ScenePrediction:
    """The prediction holding ``faces`` instead of its own, with the counts made to match."""
    counts = {label: sum(f.label == label for f in faces) for label in MASK_LABELS}
    record = replace(
        prediction.record,
        faces=len(faces),
        masked=counts[Label.WITH_MASK],
        unmasked=counts[Label.WITHOUT_MASK],
        incorrect=counts[Label.INCORRECT_MASK],
        detections=faces,
    )
    return replace(prediction, record=record)


def scored_as(class_names: Sequence[str]) -> dict[str, str | None]:
    """Each ground-truth label -> the classifier class it is scored as (None: not scored).

    A class the classifier lacks is scored as its training fallback (an incorrectly worn
    mask as without_mask: not compliant either way).
    """
    mapping: dict[str, str | None] = {}
    for label in MASK_LABELS:
        fallback = FALLBACK_CLASS.get(label)
        if label in class_names:
            mapping[label] = label
        elif fallback in class_names:
            mapping[label] = fallback
        else:
            mapping[label] = None
    return mapping


def evaluate(
    scenes: Sequence[Scene],
    predictions: Sequence[ScenePrediction],
    class_names: Sequence[str],
    bootstrap_rounds: int = 1000,
) -> dict[str, Any]:
    """The scene report: per-class AP and P/R, face recall by size, compliance MAE, timing.

    ``intervals`` holds 95 % bootstrap intervals over scenes (``scene_bootstrap``) for the
    APs, face recall and MAE; ``bootstrap_rounds=0`` leaves them out (None).
    """
    if [s.scene_id for s in scenes] != [p.scene_id for p in predictions]:
        raise ValueError("predictions must follow the scenes, one each, in order")
    mapping = scored_as(class_names)
    names = [name for name in class_names if name != CLASS_NOT_FACE]  # never a final label
    truth = [np.array([mapping[label] for label in s.labels], dtype=object) for s in scenes]

    hits = {name: _class_hits(name, scenes, truth, predictions) for name in names}
    per_class = {name: _class_report(hits[name]) for name in names}
    cross_check = torchmetrics_ap50(
        [(p.xyxy, p.scores, [names.index(label) for label in p.labels]) for p in predictions],
        [_scored_targets(s, t, names) for s, t in zip(scenes, truth, strict=True)],
        len(names),
    )
    for index, name in enumerate(names):
        per_class[name]["ap_coco101"] = cross_check[index]
    scored = [r["ap"] for r in per_class.values() if r["ap"] is not None]
    face_matches = _face_matches(scenes, predictions)
    true_ratios = [compliance_ratio(_count(s, Label.WITH_MASK), _count(s)) for s in scenes]
    predicted_ratios = [compliance_ratio(p.record.masked, p.record.faces) for p in predictions]

    seconds = sum(p.seconds for p in predictions)
    detect_seconds = sum(p.detect_seconds for p in predictions)
    return {
        "scenes": len(scenes),
        "iou_threshold": IOU_THRESHOLD,
        "gt_faces": {label: sum(_count(s, label) for s in scenes) for label in MASK_LABELS},
        "gt_difficult": int(sum(s.difficult.sum() for s in scenes)),
        "scored_as": mapping,
        "per_class": per_class,
        "map": float(np.mean(scored)) if scored else None,
        "faces": _face_report(scenes, predictions, face_matches),
        "compliance": compliance_error(true_ratios, predicted_ratios).to_dict(),
        "intervals": scene_bootstrap(
            hits,
            scene_compliance_errors(true_ratios, predicted_ratios),
            [(int(m.gt_matched[~s.difficult].sum()), int((~s.difficult).sum()))
             for s, m in zip(scenes, face_matches, strict=True)],
            rounds=bootstrap_rounds,
        ) if bootstrap_rounds and scenes else None,
        "timing": {
            "images": len(predictions),
            "ms_per_image": 1000 * seconds / len(predictions) if predictions else None,
            "images_per_s": len(predictions) / seconds if seconds else None,
            "detector_ms_per_image": (
                1000 * detect_seconds / len(predictions) if predictions else None
            ),
        },
    }


def _count(scene: Scene, label: str | None = None) -> int:
    """Ground-truth faces of ``label`` (any label if None) that are not difficult."""
    return sum(
        not hard and label in (None, mine)
        for mine, hard in zip(scene.labels, scene.difficult, strict=True)
    )


def _scored_targets(
    scene: Scene, truth: np.ndarray, names: list[str]
) -> tuple[np.ndarray, list[int]]:
    keep = [
        not hard and label is not None for label, hard in zip(truth, scene.difficult, strict=True)
    ]
    return scene.xyxy[np.asarray(keep, bool)], [
        names.index(t) for t, k in zip(truth, keep, strict=True) if k
    ]


def _class_hits(
    name: str,
    scenes: Sequence[Scene],
    truth: Sequence[np.ndarray],
    predictions: Sequence[ScenePrediction],
) -> list[SceneHits]:
    """Per scene, the predictions labelled ``name`` matched to that class's boxes."""
    per_scene = []
    for scene, labels, prediction in zip(scenes, truth, predictions, strict=True):
        gt = labels == name
        mine = np.array([label == name for label in prediction.labels], bool)
        matches = match_greedy(
            prediction.xyxy[mine],
            prediction.scores[mine],
            scene.xyxy[gt],
            scene.difficult[gt],
            IOU_THRESHOLD,
        )
        counted = ~matches.ignored
        per_scene.append(SceneHits(prediction.scores[mine][counted],
                                   matches.true_positive[counted],
                                   int(np.sum(~scene.difficult[gt]))))
    return per_scene


def _class_report(per_scene: Sequence[SceneHits]) -> dict[str, Any]:
    num_gt = sum(s.num_gt for s in per_scene)
    all_scores = np.concatenate([s.scores for s in per_scene])
    all_hits = np.concatenate([s.true_positive for s in per_scene])
    return {
        "support": num_gt,
        "ap": pooled_ap(per_scene),
        "operating": operating_point(all_hits, num_gt).to_dict(),
        "best_f1": best_f1(all_scores, all_hits, num_gt).to_dict(),
    }


def _face_matches(
    scenes: Sequence[Scene], predictions: Sequence[ScenePrediction]
) -> list[Matches]:
    """Per scene, every predicted box (any label, by face_prob) matched to any face."""
    return [
        match_greedy(p.xyxy, p.face_probs, s.xyxy, s.difficult, IOU_THRESHOLD)
        for s, p in zip(scenes, predictions, strict=True)
    ]


def _face_report(
    scenes: Sequence[Scene], predictions: Sequence[ScenePrediction], face_matches: list[Matches]
) -> dict[str, Any]:
    """Class-agnostic: any predicted box on any face, scored by the detector's face_prob.

    Also splits recall by ground-truth label (the detector's ceiling on each class's recall)
    and counts the predicted label of every found face (the classifier's share of errors).
    """
    scores, hits, matched, sizes, labels = [], [], [], [], []
    confusion = {label: dict.fromkeys(MASK_LABELS, 0) for label in MASK_LABELS}
    for scene, prediction, matches in zip(scenes, predictions, face_matches, strict=True):
        scores.append(prediction.face_probs[~matches.ignored])
        hits.append(matches.true_positive[~matches.ignored])
        matched.append(matches.gt_matched[~scene.difficult])
        sizes.append(short_side(scene.xyxy[~scene.difficult]))
        labels.append(np.array(scene.labels, dtype=object)[~scene.difficult])
        for predicted, box in zip(prediction.labels, matches.matched_gt, strict=True):
            if box >= 0:
                confusion[scene.labels[box]][predicted] += 1
    all_scores, all_hits = np.concatenate(scores), np.concatenate(hits)
    found, bins = np.concatenate(matched), size_bin(np.concatenate(sizes))
    gt_labels = np.concatenate(labels)
    precision, recall = precision_recall_curve(all_scores, all_hits, len(found))
    point = operating_point(all_hits, len(found))
    return {
        "gt": len(found),
        "predicted": point.predictions,
        "recall": point.recall if len(found) else None,
        "precision": point.precision if point.predictions else None,
        "ap": voc_ap(precision, recall) if len(found) else None,
        "recall_by_size": {
            name: _recall(found[bins == index]) for index, (name, _, _) in enumerate(FACE_SIZE_BINS)
        },
        "recall_by_class": {label: _recall(found[gt_labels == label]) for label in MASK_LABELS},
        "label_confusion": confusion,
    }


def _recall(found: np.ndarray) -> dict[str, Any]:
    return {"gt": len(found), "recall": float(found.mean()) if len(found) else None}


def describe_run(
    settings: AnalysisSettings, checkpoint: Path, class_names: Sequence[str]
) -> dict[str, Any]:
    """What produced a report, to store beside its numbers."""
    return {
        "settings": settings.to_dict(),
        "checkpoint": str(checkpoint),
        "class_names": list(class_names),
    }
