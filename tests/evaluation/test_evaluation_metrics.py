"""Hand-computed cases for the evaluation arithmetic, and the torchmetrics cross-check."""

from __future__ import annotations

import numpy as np
import pytest

from maskwatch.core.counts import compliance_ratio
from ml import metrics

T, F = True, False
BOX = [0, 0, 10, 10]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (BOX, BOX, 1.0),
        (BOX, [5, 0, 15, 10], 50 / 150),  # half overlap
        (BOX, [0, 0, 5, 10], 0.5),  # contained
        (BOX, [10, 0, 20, 10], 0.0),  # touching edges
        (BOX, [20, 20, 30, 30], 0.0),  # disjoint
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # empty boxes: no division by zero
    ],
)
def test_box_iou(a: list[float], b: list[float], expected: float) -> None:
    assert metrics.box_iou(np.array([a]), np.array([b]))[0, 0] == pytest.approx(expected)


def test_box_iou_shape() -> None:
    assert metrics.box_iou(np.zeros((3, 4)), np.zeros((0, 4))).shape == (3, 0)


@pytest.mark.parametrize(
    ("side", "bin_name"),
    [
        (0, "<16"),
        (15.9, "<16"),
        (16, "16-32"),
        (31.99, "16-32"),
        (32, "32-64"),
        (63.9, "32-64"),
        (64, ">=64"),
        (500, ">=64"),
    ],
)
def test_size_bin(side: float, bin_name: str) -> None:
    assert metrics.FACE_SIZE_BINS[int(metrics.size_bin(np.array([side]))[0])][0] == bin_name


def test_short_side() -> None:
    assert metrics.short_side(np.array([[0, 0, 30, 12], [5, 5, 9, 25]])).tolist() == [12, 4]


GT_A, GT_B = [0, 0, 10, 10], [4, 0, 14, 10]


@pytest.mark.parametrize(
    ("preds", "scores", "gts", "ignore", "tp", "ignored", "gt_matched"),
    [
        # one clean hit
        ([BOX], [0.9], [BOX], [F], [T], [F], [T]),
        # a duplicate: the higher score wins, the other is a false positive
        ([BOX, [0, 0, 10, 9]], [0.6, 0.9], [BOX], [F], [F, T], [F, F], [T]),
        # IoU exactly 0.5 counts (>= 0.5)
        ([[0, 0, 10, 5]], [0.9], [BOX], [F], [T], [F], [T]),
        # IoU 1/3 does not
        ([[5, 0, 15, 10]], [0.9], [BOX], [F], [F], [F], [F]),
        # a hit on a difficult box is ignored, and the box stays unmatched
        ([BOX], [0.9], [BOX], [T], [F], [T], [F]),
        # VOC: the second prediction's best box (A, IoU 0.82) is taken -> false positive,
        # although B (IoU 0.54) is free; COCO would match it to B
        ([GT_A, [1, 0, 11, 10]], [0.9, 0.8], [GT_A, GT_B], [F, F], [T, F], [F, F], [T, F]),
        # no ground truth: every prediction is a false positive
        ([BOX], [0.9], [], [], [F], [F], []),
        # no prediction
        ([], [], [BOX], [F], [], [], [F]),
    ],
)
def test_match_greedy(
    preds: list, scores: list, gts: list, ignore: list, tp: list, ignored: list, gt_matched: list
) -> None:
    matches = metrics.match_greedy(
        np.array(preds, np.float32).reshape(-1, 4),
        np.array(scores),
        np.array(gts, np.float32).reshape(-1, 4),
        np.array(ignore, bool),
    )
    assert matches.true_positive.tolist() == tp
    assert matches.ignored.tolist() == ignored
    assert matches.gt_matched.tolist() == gt_matched


def test_match_greedy_says_which_box_each_hit_took() -> None:
    far = [50, 50, 60, 60]
    matches = metrics.match_greedy(
        np.array([far, [0, 0, 40, 40], BOX], np.float32),
        np.array([0.5, 0.9, 0.7]),
        np.array([BOX, far], np.float32),
    )
    assert matches.matched_gt.tolist() == [1, -1, 0]  # the middle one overlaps nothing enough


def test_precision_recall_curve_sorts_by_score() -> None:
    precision, recall = metrics.precision_recall_curve(
        np.array([0.6, 0.9, 0.7, 0.8]), np.array([F, T, T, F]), num_gt=3
    )
    assert precision.tolist() == pytest.approx([1, 1 / 2, 2 / 3, 2 / 4])
    assert recall.tolist() == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])


@pytest.mark.parametrize(
    ("hits", "num_gt", "voc", "coco"),
    [
        # P = 1, 1/2, 2/3, 1/2 at R = 1/3, 1/3, 2/3, 2/3.
        # VOC: 1/3 * 1 + 1/3 * 2/3 = 5/9. COCO: 34 recall points at 1, 33 at 2/3, 34 at 0.
        ([T, F, T, F], 3, 5 / 9, (34 + 33 * 2 / 3) / 101),
        ([T, T], 2, 1.0, 1.0),
        # a miss first: envelope 2/3 up to full recall
        ([F, T, T], 2, 2 / 3, 2 / 3),
        ([F, F], 2, 0.0, 0.0),
        ([], 2, 0.0, 0.0),
        # half the faces found, all correctly
        ([T], 2, 0.5, 51 / 101),
    ],
)
def test_average_precision(hits: list[bool], num_gt: int, voc: float, coco: float) -> None:
    scores = np.linspace(1, 0.5, len(hits))
    precision, recall = metrics.precision_recall_curve(scores, np.array(hits, bool), num_gt)
    assert metrics.voc_ap(precision, recall) == pytest.approx(voc)
    assert metrics.coco_ap_101(precision, recall) == pytest.approx(coco)


@pytest.mark.parametrize(
    ("scores", "hits", "num_gt", "cut", "precision", "recall"),
    [
        # cuts: .9 -> F1 .5; .8 -> .4; .7 -> P 2/3 R 2/3 F1 2/3; .6 -> .571
        ([0.9, 0.8, 0.7, 0.6], [T, F, T, F], 3, 0.7, 2 / 3, 2 / 3),
        # equal scores cannot be split: .9 keeps both (P 1/2, R 1/2), .5 gives F1 .8
        ([0.9, 0.9, 0.5], [F, T, T], 2, 0.5, 2 / 3, 1.0),
        ([0.9, 0.9], [T, F], 1, 0.9, 0.5, 1.0),
        # nothing predicted, or nothing to find: no cut
        ([], [], 2, None, 0.0, 0.0),
        ([0.9], [F], 0, None, 0.0, 0.0),
    ],
)
def test_best_f1(
    scores: list[float],
    hits: list[bool],
    num_gt: int,
    cut: float | None,
    precision: float,
    recall: float,
) -> None:
    point = metrics.best_f1(np.array(scores), np.array(hits, bool), num_gt)
    assert point.threshold == cut
    assert (point.precision, point.recall) == pytest.approx((precision, recall))


@pytest.mark.parametrize(
    ("hits", "num_gt", "precision", "recall", "f1"),
    [([T, F, T], 4, 2 / 3, 1 / 2, 4 / 7), ([], 3, 0.0, 0.0, 0.0), ([T], 0, 1.0, 0.0, 0.0)],
)
def test_operating_point(
    hits: list[bool], num_gt: int, precision: float, recall: float, f1: float
) -> None:
    point = metrics.operating_point(np.array(hits, bool), num_gt)
    assert (point.precision, point.recall, point.f1) == pytest.approx((precision, recall, f1))
    assert point.predictions == len(hits)


@pytest.mark.parametrize(("masked", "faces", "ratio"), [(3, 4, 0.75), (0, 2, 0.0), (0, 0, None)])
def test_compliance_ratio(masked: int, faces: int, ratio: float | None) -> None:
    assert compliance_ratio(masked, faces) == ratio


def test_compliance_bias() -> None:
    # found scenes: .5 - 1 and .75 - .25; the missed scene has no sign
    assert metrics.compliance_error([1.0, 0.25, 0.6], [0.5, 0.75, None]).bias_detected == 0.0
    assert metrics.compliance_error([1.0, 0.5], [0.5, 0.25]).bias_detected == pytest.approx(-0.375)
    assert metrics.compliance_error([0.5], [None]).bias_detected is None


@pytest.mark.parametrize(
    ("truth", "predicted", "mae", "mae_detected", "scenes", "missed", "skipped"),
    [
        # errors .5; missed at r=.5 -> worst case .5; skipped; 0 -> mae 1/3, detected .25
        ([1.0, 0.5, None, 0.25], [0.5, None, 0.0, 0.25], 1 / 3, 0.25, 3, 1, 1),
        # a missed scene of ratio .8 costs .8 (the worst any answer could be), not 0
        ([0.8], [None], 0.8, None, 1, 1, 0),
        ([0.2], [None], 0.8, None, 1, 1, 0),
        ([None, None], [None, 1.0], None, None, 0, 0, 2),
    ],
)
def test_compliance_error(
    truth: list,
    predicted: list,
    mae: float | None,
    mae_detected: float | None,
    scenes: int,
    missed: int,
    skipped: int,
) -> None:
    result = metrics.compliance_error(truth, predicted)
    assert result.mae == (None if mae is None else pytest.approx(mae))
    assert result.mae_detected == (None if mae_detected is None else pytest.approx(mae_detected))
    assert (result.scenes, result.scenes_missed, result.scenes_without_faces) == (
        scenes,
        missed,
        skipped,
    )


def test_torchmetrics_cross_check_equals_our_coco_ap() -> None:
    """On matches where VOC and COCO agree, torchmetrics' AP50 is our 101-point AP."""
    rng = np.random.default_rng(0)
    predictions: list = []
    targets: list = []
    per_class: dict[int, tuple[list, list, int]] = {0: ([], [], 0), 1: ([], [], 0)}
    for _ in range(6):
        corners = rng.uniform(0, 300, (5, 2))
        gt = np.concatenate([corners, corners + rng.uniform(15, 60, (5, 2))], axis=1)
        gt_class = rng.integers(0, 2, 5)
        # a jittered copy of each face (some fall below IoU 0.5) plus one stray box
        pred = np.concatenate([gt + rng.normal(0, 6, gt.shape), [[400, 400, 430, 440]]])
        score = rng.uniform(0.1, 1, len(pred))
        pred_class = np.append(np.where(rng.uniform(size=5) < 0.8, gt_class, 1 - gt_class), 0)
        predictions.append((pred, score, pred_class))
        targets.append((gt, gt_class))
        for c in (0, 1):
            matches = metrics.match_greedy(
                pred[pred_class == c], score[pred_class == c], gt[gt_class == c]
            )
            scores, hits, num_gt = per_class[c]
            per_class[c] = (
                scores + list(score[pred_class == c]),
                hits + list(matches.true_positive),
                num_gt + int(np.sum(gt_class == c)),
            )
    reference = metrics.torchmetrics_ap50(predictions, targets, num_classes=3)
    for c in (0, 1):
        scores, hits, num_gt = per_class[c]
        precision, recall = metrics.precision_recall_curve(np.array(scores), np.array(hits), num_gt)
        assert reference[c] == pytest.approx(metrics.coco_ap_101(precision, recall), abs=1e-6)
        assert 0.2 < metrics.voc_ap(precision, recall) < 1.0  # a case that tests something
    assert reference[2] is None  # a class with no ground truth has no AP


def _hits(scores: list[float], hits: list[bool], num_gt: int) -> metrics.SceneHits:
    return metrics.SceneHits(np.array(scores, np.float64), np.array(hits, bool), num_gt)


def test_pooled_ap_by_hand() -> None:
    a = _hits([0.9], [True], 1)
    b = _hits([0.7, 0.6], [False, True], 1)
    assert metrics.pooled_ap([a]) == 1.0
    assert metrics.pooled_ap([b]) == pytest.approx(0.5)
    # .9 hit, .7 miss, .6 hit of 2: P 1 at R 1/2, P 2/3 at R 1
    assert metrics.pooled_ap([a, b]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert metrics.pooled_ap([_hits([0.8], [False], 0)]) is None


def test_scene_bootstrap_intervals_by_hand() -> None:
    # Two scenes; with 1000 draws of two, each of "both A" and "both B" comes up about 250
    # times, so the 2.5 and 97.5 percentiles are the all-B and all-A values exactly.
    class_hits = {"with_mask": [_hits([0.9], [True], 1), _hits([0.7, 0.6], [False, True], 1)]}
    intervals = metrics.scene_bootstrap(class_hits, [0.1, 0.4], [(1, 1), (1, 2)], rounds=1000)
    assert intervals["level"] == 0.95
    assert intervals["rounds"] == 1000
    assert intervals["ap"] == {"with_mask": [pytest.approx(0.5), pytest.approx(1.0)]}
    assert intervals["mae"] == [pytest.approx(0.1), pytest.approx(0.4)]
    assert intervals["face_recall"] == [pytest.approx(0.5), pytest.approx(1.0)]
    again = metrics.scene_bootstrap(class_hits, [0.1, 0.4], [(1, 1), (1, 2)], rounds=1000)
    assert again == intervals


def test_scene_bootstrap_leaves_out_draws_where_a_figure_is_undefined() -> None:
    # Scene 1 has no face to score: a draw of it alone defines nothing and is skipped; any
    # other draw gives scene 2's figures, so every interval is a single point.
    class_hits = {"with_mask": [_hits([], [], 0), _hits([0.8, 0.5], [True, False], 1)],
                  "without_mask": [_hits([], [], 0), _hits([], [], 0)]}
    intervals = metrics.scene_bootstrap(class_hits, [None, 0.2], [(0, 0), (1, 1)], rounds=200)
    assert intervals["ap"] == {"with_mask": [1.0, 1.0], "without_mask": None}
    assert intervals["mae"] == [pytest.approx(0.2), pytest.approx(0.2)]
    assert intervals["face_recall"] == [1.0, 1.0]


def test_scene_bootstrap_refuses_lists_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="one entry per scene"):
        metrics.scene_bootstrap({"with_mask": [_hits([], [], 1)]}, [0.1, 0.2], [(0, 1)])
