"""Which stage holds each scene figure back: the detector or the classifier.

    python scripts/experiments/gap_decomposition.py [--split SPLIT_FILE] [--json OUT]

Runs the validation scenes four ways with the shipped settings (1 torch thread) and scores
each with the same ``evaluate`` as ``maskwatch evaluate-scenes``:

- ``shipped``: the whole pipeline as it is.
- ``perfect labels``: the shipped pipeline's boxes, but every box that matches a face
  (IoU >= 0.5) takes that face's true label, scored by the detector's face_prob; boxes on
  no face keep the classifier's label. What a flawless classifier would give on these boxes.
- ``no false boxes``: the shipped pipeline with its boxes on no face removed, labels and
  scores as they were: what the classifier's errors on found faces alone cost.
- ``detector ceiling``: the detectors' boxes before the classifier's not_face veto, only
  those on a face, each with its true label. Precision is 1, so each class's AP is the
  share of that class's faces the detectors find at all: no classifier can pass it.
- ``true boxes``: every annotated face given to our classifier as if the detector had found
  it exactly (face_prob 1), veto included. What a flawless detector would give.

Also counts the faces under 12 px, the smallest window of MTCNN's PNet at the shipped
scale. Needs ../shared.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import worker.pipeline.analyze as analyze
from maskwatch.runtime import analysis_settings, models_for
from maskwatch.settings import get_settings
from worker.evaluation.metrics import FACE_SIZE_BINS, match_greedy, short_side, size_bin
from worker.evaluation.run import (
    IOU_THRESHOLD,
    ScenePrediction,
    evaluate,
    predict_scenes,
    scored_as,
    with_faces,
)
from worker.evaluation.scenes import Scene, load_scenes, read_split
from worker.pipeline.types import (
    CLASS_INCORRECT_MASK,
    CLASS_WITH_MASK,
    CLASS_WITHOUT_MASK,
    MASK_LABELS,
    Detections,
)

SCENES = Path("../shared/datasets/kaggle-scenes-dev")
VAL = Path("worker/training/splits/kaggle_scenes_val.txt")
MTCNN_SMALLEST = 12  # PNet's window, in pixels of the frame it sees


class TrueBoxes:
    """A FaceDetector that returns annotated boxes, one scene per call, in the given order.

    Boxes are scaled from the annotation's pixels to the frame it is handed (the decoder may
    shrink large images to max_frame_side).
    """

    def __init__(self, scenes: Sequence[Scene]) -> None:
        self._scenes = list(scenes)
        self._next = 0

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for frame in frames:
            scene = self._scenes[self._next]
            self._next += 1
            xyxy = (scene.xyxy * (frame.shape[1] / scene.size_wh[0])).astype(np.float32)
            out.append(Detections(xyxy, np.ones(len(xyxy), np.float32),
                                  np.zeros((len(xyxy), 5, 2), np.float32)))
        return out


def relabelled(scene: Scene, prediction: ScenePrediction, mapping: dict[str, str | None],
               keep_unmatched: bool, relabel: bool = True) -> ScenePrediction:
    """Boxes on a face take its true label (score = face_prob) if ``relabel``; the rest kept
    or dropped."""
    matches = match_greedy(prediction.xyxy, prediction.face_probs, scene.xyxy,
                           scene.difficult, IOU_THRESHOLD)
    faces = []
    for face, box in zip(prediction.record.detections, matches.matched_gt, strict=True):
        if box >= 0 and not relabel:
            faces.append(face)
        elif box >= 0:
            label = mapping[scene.labels[box]] or face.label
            faces.append(replace(face, label=label, score=face.face_prob))
        elif keep_unmatched:
            faces.append(face)
    return with_faces(prediction, faces)


def missed_by_size(scenes: Sequence[Scene],
                   predictions: Sequence[ScenePrediction]) -> dict[str, dict[str, int]]:
    """Per true label, the faces no box lands on (IoU >= 0.5), by size bin."""
    missed = {label: dict.fromkeys((name for name, _, _ in FACE_SIZE_BINS), 0)
              for label in MASK_LABELS}
    for scene, prediction in zip(scenes, predictions, strict=True):
        matches = match_greedy(prediction.xyxy, prediction.face_probs, scene.xyxy,
                               scene.difficult, IOU_THRESHOLD)
        bins = size_bin(short_side(scene.xyxy))
        for index, label in enumerate(scene.labels):
            if not scene.difficult[index] and not matches.gt_matched[index]:
                missed[label][FACE_SIZE_BINS[bins[index]][0]] += 1
    return missed


def summary(report: dict[str, Any]) -> dict[str, Any]:
    per_class = report["per_class"]
    faces = report["faces"]
    return {
        "with_mask_ap": per_class[CLASS_WITH_MASK]["ap"],
        "without_mask_ap": per_class[CLASS_WITHOUT_MASK]["ap"],
        "incorrect_ap": per_class.get(CLASS_INCORRECT_MASK, {}).get("ap"),
        "face_recall": faces["recall"],
        "face_precision": faces["precision"],
        "recall_by_class": {k: v["recall"] for k, v in faces["recall_by_class"].items()},
        "mae": report["compliance"]["mae"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", type=Path, default=VAL)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = get_settings()
    analysis = analysis_settings(settings)
    models = models_for(settings, analysis)
    names = list(models.classifier.class_names)
    mapping = scored_as(names)
    scenes = load_scenes(SCENES / "annotations", SCENES / "images", read_split(args.split), None)

    shipped = predict_scenes(scenes, models, analysis)
    rows = {"shipped": evaluate(scenes, shipped, names, bootstrap_rounds=0)}
    rows["perfect labels"] = evaluate(
        scenes, [relabelled(s, p, mapping, keep_unmatched=True)
                 for s, p in zip(scenes, shipped, strict=True)], names, bootstrap_rounds=0)

    rows["no false boxes"] = evaluate(
        scenes, [relabelled(s, p, mapping, keep_unmatched=False, relabel=False)
                 for s, p in zip(scenes, shipped, strict=True)], names, bootstrap_rounds=0)

    veto = analyze.NOT_FACE_VETO
    analyze.NOT_FACE_VETO = 2.0  # no box is dropped: every detector box reaches the record
    try:
        unvetoed = predict_scenes(scenes, models, analysis)
    finally:
        analyze.NOT_FACE_VETO = veto
    rows["detector ceiling"] = evaluate(
        scenes, [relabelled(s, p, mapping, keep_unmatched=False)
                 for s, p in zip(scenes, unvetoed, strict=True)], names, bootstrap_rounds=0)

    # predict_scenes first runs scenes[0] once untimed, then every scene in order
    true_boxes = predict_scenes(
        scenes, replace(models, detector=TrueBoxes([scenes[0], *scenes])), analysis)
    rows["true boxes"] = evaluate(scenes, true_boxes, names, bootstrap_rounds=0)

    table = {name: summary(report) for name, report in rows.items()}
    sizes = np.concatenate([short_side(s.xyxy[~s.difficult]) for s in scenes])
    labels = np.concatenate([np.array(s.labels, dtype=object)[~s.difficult] for s in scenes])
    under = {label: [int(((labels == label) & (sizes < MTCNN_SMALLEST)).sum()),
                     int((labels == label).sum())] for label in MASK_LABELS}
    missed = missed_by_size(scenes, unvetoed)
    out = {"rows": table, f"faces_under_{MTCNN_SMALLEST}px": under, "missed_by_size": missed}
    print(f"{'':18} {'with AP':>8} {'w/o AP':>8} {'inc AP':>8} {'recall':>7} "
          f"{'prec':>6} {'MAE':>7}")
    for name, row in table.items():
        inc = row["incorrect_ap"]
        print(f"{name:18} {row['with_mask_ap']:8.3f} {row['without_mask_ap']:8.3f} "
              f"{(inc if inc is not None else float('nan')):8.3f} {row['face_recall']:7.3f} "
              f"{row['face_precision']:6.3f} {row['mae']:7.4f}")
    print("recall by class:", {k: v["recall_by_class"] for k, v in table.items()})
    print(f"faces under {MTCNN_SMALLEST} px (of all):", under)
    print("faces the detectors miss (before the veto), by size:", missed)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
