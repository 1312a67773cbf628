"""Metric arithmetic against hand-computed confusion tables."""

from __future__ import annotations

import numpy as np
import pytest

from ml.metrics import (
    accuracy,
    balanced_accuracy,
    build_report,
    compliance_matrix,
    confusion_matrix,
    expected_calibration_error,
    face_size_bin,
    precision_recall_f1,
)


@pytest.mark.parametrize(
    ("targets", "predictions", "num_classes", "expected"),
    [
        ([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], 2, [[1, 1], [1, 2]]),
        ([0, 1, 2, 2], [2, 1, 0, 2], 3, [[0, 0, 1], [0, 1, 0], [1, 0, 1]]),
        ([1, 1], [1, 1], 3, [[0, 0, 0], [0, 2, 0], [0, 0, 0]]),
        ([], [], 2, [[0, 0], [0, 0]]),
    ],
)
def test_confusion_matrix_rows_are_truth(targets, predictions, num_classes, expected):
    assert confusion_matrix(np.array(targets, np.int64), np.array(predictions, np.int64),
                            num_classes).tolist() == expected


@pytest.mark.parametrize(
    ("matrix", "precision", "recall", "f1", "acc", "balanced"),
    [
        # P = 3/5, 4/5; R = 3/4, 4/6; F1 = 2PR/(P+R)
        ([[3, 1], [2, 4]], [0.6, 0.8], [0.75, 4 / 6], [2 / 3, 8 / 11], 0.7, (0.75 + 4 / 6) / 2),
        # class 2 predicted once, never right: P = R = F1 = 0
        ([[5, 0, 0], [1, 3, 1], [0, 2, 0]], [5 / 6, 0.6, 0.0], [1.0, 0.6, 0.0],
         [10 / 11, 0.6, 0.0], 8 / 12, 1.6 / 3),
        # class 2 absent from truth and predictions: undefined -> 0, left out of balanced acc.
        ([[2, 0, 0], [0, 2, 0], [0, 0, 0]], [1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 0.0],
         1.0, 1.0),
        # everything predicted as class 0
        ([[4, 0], [6, 0]], [0.4, 0.0], [1.0, 0.0], [4 / 7, 0.0], 0.4, 0.5),
    ],
)
def test_per_class_and_summary_metrics(matrix, precision, recall, f1, acc, balanced):
    p, r, f = precision_recall_f1(np.array(matrix))
    np.testing.assert_allclose(p, precision)
    np.testing.assert_allclose(r, recall)
    np.testing.assert_allclose(f, f1)
    assert accuracy(np.array(matrix)) == pytest.approx(acc)
    assert balanced_accuracy(np.array(matrix)) == pytest.approx(balanced)


def test_compliance_matrix_merges_every_non_compliant_class():
    matrix = np.array([[5, 1, 2], [1, 3, 1], [0, 2, 4]])
    names = ("with_mask", "without_mask", "incorrect_mask")
    assert compliance_matrix(matrix, names).tolist() == [[5, 3], [1, 10]]


@pytest.mark.parametrize(
    ("confidence", "correct", "expected"),
    [
        (1.0, [True] * 4, 0.0),
        (0.8, [True, False, True, False], 0.3),  # one bin: |0.8 - 0.5|
        (0.75, [True, True, True, True], 0.25),
    ],
)
def test_expected_calibration_error(confidence, correct, expected):
    targets = np.zeros(len(correct), np.int64)
    probabilities = np.array([[confidence, 1 - confidence] if ok else [1 - confidence, confidence]
                              for ok in correct], np.float32)
    assert expected_calibration_error(probabilities, targets) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(("px", "name"), [(0, "<16"), (15.9, "<16"), (16, "16-32"),
                                          (31.9, "16-32"), (32, "32-64"), (64, ">=64"),
                                          (500, ">=64")])
def test_face_size_bins(px, name):
    assert face_size_bin(px) == name


def test_report_slices_add_up():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], np.float32)
    targets = np.array([0, 1, 1, 0])
    report = build_report(probabilities, targets, ("with_mask", "without_mask"),
                          face_px=np.array([10, 20, 40, 100]),
                          greyscale=np.array([True, False, False, False]),
                          folders=["a", "a", "b", "b"])
    assert report["count"] == 4
    assert report["confusion_matrix"] == [[1, 1], [1, 1]]
    assert report["accuracy"] == pytest.approx(0.5)
    assert [s["count"] for s in report["slices"]["face_size_px"].values()] == [1, 1, 1, 1]
    assert report["slices"]["colour"]["greyscale"]["count"] == 1
    assert report["slices"]["folder"]["a"]["accuracy"] == pytest.approx(1.0)
    assert report["slices"]["folder"]["b"]["accuracy"] == pytest.approx(0.0)
