"""The scene report on hand-made scenes and predictions (no model involved)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from maskwatch.core.records import FaceRecord, FrameRecord
from ml.data.scenes import Scene
from ml.evaluation.run import ScenePrediction, evaluate, keep_face_prob, scored_as

CLASSES = ("with_mask", "without_mask")


def scene(scene_id: str, faces: list[tuple[list[float], str, bool]]) -> Scene:
    return Scene(
        scene_id,
        Path(f"{scene_id}.jpg"),
        (400, 300),
        np.array([box for box, _, _ in faces], np.float32).reshape(-1, 4),
        tuple(label for _, label, _ in faces),
        np.array([hard for _, _, hard in faces], bool),
    )


def prediction(
    scene_id: str, faces: list[tuple[list[float], str, float, float]], seconds: float = 0.1
) -> ScenePrediction:
    records = [
        FaceRecord(box[0], box[1], box[2], box[3], label, score, face_prob)
        for box, label, score, face_prob in faces
    ]
    count = {
        k: sum(f.label == k for f in records)
        for k in ("with_mask", "without_mask", "incorrect_mask")
    }
    return ScenePrediction(
        scene_id,
        FrameRecord(
            frame_index=0,
            timestamp_s=0.0,
            faces=len(records),
            masked=count["with_mask"],
            unmasked=count["without_mask"],
            incorrect=count["incorrect_mask"],
            detections=records,
        ),
        seconds,
        seconds / 2,
    )


SCENES = [
    # A with_mask 20 px, B without_mask 10 px, C incorrect_mask 40 px
    scene(
        "s1",
        [
            ([0, 0, 20, 20], "with_mask", False),
            ([50, 50, 60, 60], "without_mask", False),
            ([100, 100, 140, 140], "incorrect_mask", False),
        ],
    ),
    scene("s2", []),
    # D with_mask 80 px; E without_mask, difficult
    scene("s3", [([0, 0, 80, 80], "with_mask", False), ([100, 0, 130, 30], "without_mask", True)]),
    # F with_mask 30 px, never found
    scene("s4", [([0, 0, 30, 30], "with_mask", False)]),
]
PREDICTIONS = [
    prediction(
        "s1",
        [
            ([0, 0, 20, 20], "with_mask", 0.9, 0.95),  # hits A
            ([101, 101, 140, 140], "without_mask", 0.8, 0.90),  # hits C
            ([200, 200, 220, 220], "with_mask", 0.5, 0.92),
        ],
    ),  # stray
    prediction("s2", [([10, 10, 30, 30], "with_mask", 0.7, 0.93)]),  # stray
    prediction("s3", [([100, 0, 130, 30], "without_mask", 0.6, 0.91)]),  # on difficult E
    prediction("s4", []),
]


@pytest.fixture(scope="module")
def report() -> dict:
    return evaluate(SCENES, PREDICTIONS, CLASSES)


def test_ground_truth_counts(report: dict) -> None:
    assert report["scenes"] == 4
    assert report["gt_faces"] == {"with_mask": 3, "without_mask": 1, "incorrect_mask": 1}
    assert report["gt_difficult"] == 1
    assert report["scored_as"]["incorrect_mask"] == "without_mask"


def test_per_class(report: dict) -> None:
    with_mask = report["per_class"]["with_mask"]
    # A, D, F; predictions .9 (A), .7 and .5 (strays): P 1, 1/2, 1/3 at R 1/3
    assert with_mask["support"] == 3
    assert with_mask["ap"] == pytest.approx(1 / 3)
    assert with_mask["ap_coco101"] == pytest.approx(34 / 101, abs=1e-6)
    assert (with_mask["operating"]["precision"], with_mask["operating"]["recall"]) == (
        pytest.approx(1 / 3),
        pytest.approx(1 / 3),
    )
    assert with_mask["best_f1"]["threshold"] == pytest.approx(0.9)
    assert with_mask["best_f1"]["precision"] == 1.0
    without = report["per_class"]["without_mask"]
    # B and C (incorrect scored as without_mask); the hit on difficult E counts neither way
    assert without["support"] == 2
    assert without["operating"]["predictions"] == 1
    assert (without["operating"]["precision"], without["operating"]["recall"]) == (1.0, 0.5)
    assert without["ap"] == pytest.approx(0.5)
    assert report["map"] == pytest.approx((1 / 3 + 0.5) / 2)


def test_faces(report: dict) -> None:
    faces = report["faces"]
    # found A and C of A, B, C, D, F; four counted predictions (E's is ignored)
    assert (faces["gt"], faces["predicted"]) == (5, 4)
    assert (faces["recall"], faces["precision"]) == (pytest.approx(0.4), pytest.approx(0.5))
    # by face_prob: .95 hit, .93 miss, .92 miss, .90 hit -> .2 * 1 + .2 * .5
    assert faces["ap"] == pytest.approx(0.3)
    assert faces["recall_by_size"] == {
        "<16": {"gt": 1, "recall": 0.0},
        "16-32": {"gt": 2, "recall": 0.5},
        "32-64": {"gt": 1, "recall": 1.0},
        ">=64": {"gt": 1, "recall": 0.0},
    }


def test_faces_by_class_and_found_labels(report: dict) -> None:
    faces = report["faces"]
    assert faces["recall_by_class"] == {
        "with_mask": {"gt": 3, "recall": pytest.approx(1 / 3)},
        "without_mask": {"gt": 1, "recall": 0.0},
        "incorrect_mask": {"gt": 1, "recall": 1.0},
    }
    # A found and called with_mask, C (incorrect) found and called without_mask
    assert faces["label_confusion"]["with_mask"] == {
        "with_mask": 1,
        "without_mask": 0,
        "incorrect_mask": 0,
    }
    assert faces["label_confusion"]["incorrect_mask"]["without_mask"] == 1
    assert sum(faces["label_confusion"]["without_mask"].values()) == 0


def test_compliance_and_timing(report: dict) -> None:
    # s1: truth 1/3, predicted 2/3; s2 skipped; s3: truth 1, predicted 0; s4 missed -> 1
    assert report["compliance"] == {
        "mae": pytest.approx((1 / 3 + 1 + 1) / 3),
        "mae_detected": pytest.approx(2 / 3),
        "bias_detected": pytest.approx((1 / 3 - 1) / 2),
        "scenes": 3,
        "scenes_missed": 1,
        "scenes_without_faces": 1,
    }
    assert report["timing"]["ms_per_image"] == pytest.approx(100)
    assert report["timing"]["images_per_s"] == pytest.approx(10)
    assert report["timing"]["detector_ms_per_image"] == pytest.approx(50)


def test_bootstrap_intervals(report: dict) -> None:
    intervals = report["intervals"]
    # Per-scene compliance errors 1/3, -, 1, 1 and faces found 2 of 3, 0 of 0, 0 of 1, 0 of 1.
    # Four draws from {s1, s2} only (1 in 16, often enough for the 2.5 % tail) give MAE 1/3
    # and recall 2/3; draws without s1 give MAE 1 and recall 0.
    assert intervals["mae"] == [pytest.approx(1 / 3), pytest.approx(1.0)]
    assert intervals["face_recall"] == [pytest.approx(0.0), pytest.approx(2 / 3)]
    for name, (low, high) in intervals["ap"].items():
        assert low <= report["per_class"][name]["ap"] <= high
    assert evaluate(SCENES, PREDICTIONS, CLASSES, bootstrap_rounds=0)["intervals"] is None


def test_evaluate_needs_predictions_in_scene_order() -> None:
    with pytest.raises(ValueError, match="in order"):
        evaluate(SCENES, PREDICTIONS[::-1], CLASSES)


def test_keep_face_prob_recounts() -> None:
    kept = keep_face_prob(PREDICTIONS[0], 0.91)
    assert [f.face_prob for f in kept.record.detections] == [0.95, 0.92]
    assert (kept.record.faces, kept.record.masked, kept.record.unmasked) == (2, 2, 0)


@pytest.mark.parametrize(
    ("classes", "incorrect", "without"),
    [
        (CLASSES, "without_mask", "without_mask"),
        (("with_mask", "without_mask", "incorrect_mask"), "incorrect_mask", "without_mask"),
        (("with_mask",), None, None),
    ],
)
def test_scored_as(classes: tuple[str, ...], incorrect: str | None, without: str | None) -> None:
    mapping = scored_as(classes)
    assert (mapping["incorrect_mask"], mapping["without_mask"]) == (incorrect, without)
