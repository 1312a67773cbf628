"""Cheap changes after the detector: mirrored-crop averaging, and one box per class for AP.

Backs: mirror_faces on by default (each face read mirrored too and the two averaged).

    python ml/experiments/score_variants.py [--split SPLIT_FILE] [--checkpoint PT]

Runs the shipped detector once per validation scene (its boxes are cached by frame), then
the shipped classifier three ways and reports the scene metrics of each:

- ``plain``: the shipped pipeline.
- ``flip``: each crop's probabilities averaged with those of its mirror image (test-time
  augmentation; ``CNNMaskClassifier(mirror=True)``, the default since it was measured here).
- ``multilabel`` rows: the same faces and counts, but for AP every kept face is also
  offered to each class, scored face_prob x that class's probability (what YOLOv5's val.py
  does with multi_label=True). Only per-class AP changes; counts and MAE are those of the
  row it is built on.

Needs ../shared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from maskwatch.core.counts import compliance_ratio
from maskwatch.core.labels import CLASS_NOT_FACE, MASK_LABELS
from maskwatch.core.records import FaceRecord
from maskwatch.runtime import analysis_settings, models_for
from maskwatch.settings import get_settings
from ml.data.scenes import load_scenes, read_split
from ml.evaluation.run import (
    ScenePrediction,
    _class_hits,
    _count,
    evaluate,
    predict_scenes,
    scored_as,
)
from ml.metrics import pooled_ap, scene_compliance_errors
from worker.pipeline.analyze import NOT_FACE_VETO
from worker.pipeline.classify import CNNMaskClassifier
from worker.pipeline.types import Detections, FaceLabels

SCENES = Path("../shared/datasets/kaggle-scenes-dev")
VAL = Path("ml/training/splits/kaggle_scenes_val.txt")


class CachedDetector:
    """Runs the wrapped detector once per distinct frame."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.cache: dict[str, Detections] = {}

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for frame in frames:
            key = hashlib.sha1(np.ascontiguousarray(frame).tobytes()).hexdigest()
            if key not in self.cache:
                self.cache[key] = self.inner.detect([frame])[0]
            out.append(self.cache[key])
        return out


class RecordingClassifier:
    """The CNN, with or without mirrored reading; keeps every answer for multi-label AP."""

    def __init__(self, inner: CNNMaskClassifier, flip: bool) -> None:
        self.inner = inner.reading(flip)
        self.class_names = inner.class_names
        self.answers: list[tuple[np.ndarray, np.ndarray]] = []

    def classify(self, frame: np.ndarray, xyxy: np.ndarray) -> FaceLabels:
        labels = self.inner.classify(frame, xyxy)
        self.answers.append((np.asarray(xyxy, np.float32).copy(), labels.probabilities.copy()))
        return labels


def multilabel(prediction: ScenePrediction, probabilities: np.ndarray,
               class_names: Sequence[str], faces: Detections) -> ScenePrediction:
    """Each face kept by the veto, once per mask class, scored face_prob x p(class)."""
    keep = np.ones(len(probabilities), bool)
    if CLASS_NOT_FACE in class_names:
        keep = probabilities[:, class_names.index(CLASS_NOT_FACE)] < NOT_FACE_VETO
    scale = _FRAMES[prediction.scene_id][1]  # image pixels per decoded pixel
    records = []
    for box, face_prob, probs in zip(faces.xyxy[keep], faces.confidence[keep],
                                     probabilities[keep], strict=True):
        for label in MASK_LABELS:
            if label not in class_names:
                continue
            p = float(probs[class_names.index(label)])
            x1, y1, x2, y2 = (float(v) * scale for v in box)
            records.append(FaceRecord(x1, y1, x2, y2, label=label,
                                      score=float(face_prob) * p, face_prob=float(face_prob)))
    return replace(prediction, record=replace(prediction.record, detections=records))


def run(scenes, models, analysis, flip: bool):
    classifier = RecordingClassifier(models.classifier, flip)
    predictions = predict_scenes(scenes, replace(models, classifier=classifier), analysis)
    answers = classifier.answers[1:]  # predict_scenes runs the first scene once untimed
    assert len(answers) == len(scenes)
    report = evaluate(scenes, predictions, classifier.class_names)
    multi = [multilabel(p, probs, classifier.class_names,
                        models.detector.detect([_FRAMES[s.scene_id][0]])[0])
             for p, s, (_, probs) in zip(predictions, scenes, answers, strict=True)]
    multi_report = evaluate(scenes, multi, classifier.class_names)
    return report, multi_report, predictions


_FRAMES: dict[str, tuple[np.ndarray, float]] = {}  # scene id -> decoded frame, box scale


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", type=Path, default=VAL)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--detector-weights", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = get_settings()
    if args.checkpoint is not None:
        settings = settings.model_copy(update={"checkpoint": args.checkpoint})
    analysis = analysis_settings(settings, detector_weights=args.detector_weights)
    models = models_for(settings, analysis)
    detector = CachedDetector(models.detector)
    models = replace(models, detector=detector)
    scenes = load_scenes(SCENES / "annotations", SCENES / "images", read_split(args.split), None)
    from worker.images import classify_image

    for scene in scenes:  # the decoded frame of each scene, for the multi-label rows
        result = classify_image(scene.image_path, models, analysis)
        _FRAMES[scene.scene_id] = (result.image, result.box_scale)
    rows = {}
    predictions_by_name = {}
    for flip in (False, True):
        report, multi, predictions = run(scenes, models, analysis, flip)
        name = "flip" if flip else "plain"
        rows[name] = report
        rows[name + "+multilabel"] = multi
        predictions_by_name[name] = predictions
    names = [n for n in models.classifier.class_names if n in MASK_LABELS]
    summary = {}
    for name, report in rows.items():
        per_class = report["per_class"]
        summary[name] = {
            "ap": {c: round(r["ap"], 4) for c, r in per_class.items() if r["ap"] is not None},
            "mae": round(report["compliance"]["mae"], 4),
            "mae_detected": round(report["compliance"]["mae_detected"], 4),
            "precision": round(report["faces"]["precision"], 4),
            "confusion_without": report["faces"]["label_confusion"]["without_mask"],
        }
    print(json.dumps(summary, indent=1))
    print(json.dumps({"flip - plain, paired bootstrap over scenes (95 %)":
                      paired_difference(scenes, predictions_by_name["flip"],
                                        predictions_by_name["plain"], names)}, indent=1))


def paired_difference(scenes, a, b, names, rounds: int = 2000):
    """Percentile interval of (a - b) for each class AP and the MAE, same scene draws."""
    mapping = scored_as(names)
    truth = [np.array([mapping[label] for label in s.labels], dtype=object) for s in scenes]
    hits_a = {n: _class_hits(n, scenes, truth, a) for n in names}
    hits_b = {n: _class_hits(n, scenes, truth, b) for n in names}

    def errors(predictions):
        return np.array([np.nan if e is None else e for e in scene_compliance_errors(
            [compliance_ratio(_count(s, "with_mask"), _count(s)) for s in scenes],
            [compliance_ratio(p.record.masked, p.record.faces) for p in predictions])])

    err_a, err_b = errors(a), errors(b)
    rng = np.random.default_rng(0)
    draws: dict[str, list[float]] = {n: [] for n in [*names, "mae"]}
    for _ in range(rounds):
        pick = rng.integers(0, len(scenes), len(scenes))
        for n in names:
            ap_a = pooled_ap([hits_a[n][i] for i in pick])
            ap_b = pooled_ap([hits_b[n][i] for i in pick])
            if ap_a is not None and ap_b is not None:
                draws[n].append(ap_a - ap_b)
        draws["mae"].append(float(np.nanmean(err_a[pick]) - np.nanmean(err_b[pick])))
    point = {n: (pooled_ap(hits_a[n]) or 0.0) - (pooled_ap(hits_b[n]) or 0.0) for n in names}
    point["mae"] = float(np.nanmean(err_a) - np.nanmean(err_b))
    return {n: {"point": round(point[n], 4),
                "bootstrap_mean": round(float(np.mean(v)), 4),
                "interval": [round(float(x), 4) for x in np.percentile(v, [2.5, 97.5])],
                "share_above_0": round(float(np.mean(np.array(v) > 0)), 3)}
            for n, v in draws.items()}


if __name__ == "__main__":
    main()
