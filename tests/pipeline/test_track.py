"""Tracks: the label vote, the longest-held label, stitching segment pieces, the tracker."""

from __future__ import annotations

import numpy as np
import pytest

from worker.pipeline.track import (
    LOST_AFTER_S,
    FaceTracker,
    LabelVote,
    TrackPiece,
    box_iou,
    dominant_label,
    stitch,
)
from worker.pipeline.types import Detections, FaceLabels

M, U, INC = "with_mask", "without_mask", "incorrect_mask"
CLASSES = (INC, M, U)


@pytest.mark.parametrize(
    ("readings", "held"),
    [
        # one confident flicker in a steady run does not change the label
        ([(U, 0.9)] * 5 + [(M, 0.95)] + [(U, 0.9)] * 3, [U] * 9),
        # putting a mask on: the label changes once, when masked readings outweigh the rest
        ([(U, 0.9)] * 4 + [(M, 0.9)] * 6, [U] * 4 + [U, U, M, M, M, M]),
        # a weak reading is outweighed by a stronger one
        ([(M, 0.3), (U, 0.9)], [M, U]),
        # an even split keeps what the track had
        ([(M, 0.5), (U, 0.5)], [M, M]),
    ],
)
def test_vote_follows_the_weighted_majority_of_its_window(
    readings: list[tuple[str, float]], held: list[str]
) -> None:
    vote = LabelVote(window=5)
    assert [vote.add(label, weight) for label, weight in readings] == held


def test_vote_changes_label_once_when_a_mask_goes_on_among_flickers() -> None:
    vote = LabelVote(window=7)
    readings = [U, U, M, U, U, U, M, M, U, M, M, M, M, M, M]
    held = [vote.add(label, 0.9) for label in readings]
    changes = sum(a != b for a, b in zip(held, held[1:], strict=False))
    assert changes == 1 and held[0] == U and held[-1] == M


@pytest.mark.parametrize(
    ("seconds", "label"),
    [
        ({M: 5.0, U: 3.0, INC: 0.0}, M),
        ({M: 1.0, U: 3.0, INC: 2.0}, U),
        ({M: 2.0, U: 2.0, INC: 0.0}, U),  # ties go to the least compliant label
        ({M: 2.0, U: 0.0, INC: 2.0}, INC),
    ],
)
def test_dominant_label_is_the_one_held_longest(seconds: dict[str, float], label: str) -> None:
    assert dominant_label(seconds) == label


def test_box_iou() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)


def piece(
    id_: int,
    segment: int,
    first_s: float,
    last_s: float,
    box: tuple[float, float, float, float] = (0, 0, 10, 10),
    handoff: tuple[int, tuple[float, float, float, float]] | None = None,
    boxes_at: dict[int, tuple[float, float, float, float]] | None = None,
) -> TrackPiece:
    return TrackPiece(id_, segment, first_s, last_s, box, box, handoff, boxes_at or {})


def test_stitch_joins_a_piece_seen_in_warmup_to_the_one_at_that_frame() -> None:
    far = (100, 100, 110, 110)
    pieces = [
        piece(1, 0, 0.0, 9.8, boxes_at={49: (0, 0, 10, 10)}),
        piece(2, 0, 3.0, 9.8, box=far, boxes_at={49: far}),
        piece(3, 1, 10.0, 15.0, handoff=(49, far)),
        piece(4, 1, 10.0, 12.0, handoff=(49, (0, 0, 10, 10))),
        piece(5, 1, 14.0, 15.0, box=far),  # new: starts long after the boundary
    ]
    assert stitch(pieces) == {3: 2, 4: 1}


def test_stitch_resumes_a_piece_lost_just_before_the_boundary() -> None:
    pieces = [
        piece(1, 0, 0.0, 9.6),
        piece(2, 1, 10.0, 12.0),  # boundary at 10.0, 0.4 s after the last sighting
        piece(3, 1, 10.0, 11.0, box=(300, 300, 310, 310)),  # elsewhere: someone else
    ]
    assert stitch(pieces) == {2: 1}


def test_stitch_leaves_a_gap_longer_than_the_tracker_would_bridge() -> None:
    pieces = [piece(1, 0, 0.0, 5.0), piece(2, 1, 5.0 + LOST_AFTER_S + 0.2, 9.0)]
    assert stitch(pieces) == {}


def test_stitch_continues_each_earlier_piece_once_and_not_across_a_gap_segment() -> None:
    pieces = [
        piece(1, 0, 0.0, 9.8, boxes_at={49: (0, 0, 10, 10)}),
        piece(2, 1, 10.0, 19.8, handoff=(49, (0, 0, 10, 10))),
        piece(3, 1, 10.0, 19.8, handoff=(49, (1, 0, 11, 10))),
        piece(4, 3, 30.0, 31.0),  # segment 2 held nobody
    ]
    assert stitch(pieces) == {2: 1}


def frame_faces(boxes: list[tuple[float, float, float, float]], labels: list[str]):  # type: ignore[no-untyped-def]
    n = len(boxes)
    detections = Detections(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4),
        confidence=np.full((n,), 0.99, np.float32),
        landmarks=np.zeros((n, 5, 2), np.float32),
    )
    probabilities = np.array(
        [[0.02, 0.96, 0.02] if label == M else [0.02, 0.02, 0.96] for label in labels],
        np.float32,
    ).reshape(-1, 3)
    return detections, FaceLabels(CLASSES, probabilities)


def test_tracker_keeps_one_track_per_walking_face_and_counts_its_seconds() -> None:
    tracker = FaceTracker(0.2, 5.0)
    for i in range(20):  # 4 s: one face walking right, one standing still masked
        detections, labels = frame_faces(
            [(10 + 8 * i, 50, 90 + 8 * i, 150), (400, 40, 480, 140)], [U, M]
        )
        tracker.update(i * 2, i * 0.2, detections, labels)
    tracks = [t for t in tracker.tracks.values() if t.stored]
    assert len(tracks) == 2
    by_label = {t.label: t for t in tracks}
    assert set(by_label) == {U, M}
    # the spawning frame has no confirmed track yet: 19 of the 20 frames are counted
    assert by_label[U].readings == 19
    assert by_label[U].seconds_seen == pytest.approx(19 * 0.2)
    assert by_label[M].seconds[M] == pytest.approx(19 * 0.2)


def test_warmup_frames_feed_the_vote_and_the_handoff_not_the_figures() -> None:
    tracker = FaceTracker(0.2, 5.0)
    for i in range(5):
        detections, labels = frame_faces([(10, 50, 90, 150)], [U])
        tracker.update(i * 2, i * 0.2, detections, labels, own=False)
    tracker.end_warmup()
    detections, labels = frame_faces([(10, 50, 90, 150)], [M])
    tracker.update(10, 1.0, detections, labels)
    (track,) = tracker.tracks.values()
    assert track.handoff == (8, (10.0, 50.0, 90.0, 150.0))
    assert track.readings == 1 and track.first_frame_index == 10
    assert track.seconds[U] == pytest.approx(0.2)  # the warm vote still says unmasked


def test_a_still_image_makes_every_face_a_person() -> None:
    tracker = FaceTracker(0.0, 1.0, still=True)
    detections, labels = frame_faces([(10, 50, 90, 150), (200, 50, 280, 150)], [M, U])
    keys = [face.track_key for face in tracker.update(0, 0.0, detections, labels)]
    assert keys == [1, 2]
    assert sorted(t.label for t in tracker.tracks.values()) == [M, U]


def test_carried_frames_count_for_time_not_as_readings() -> None:
    tracker = FaceTracker(0.2, 5.0)
    for i in range(6):
        detections, labels = frame_faces([(10, 50, 90, 150)], [M])
        tracker.update(i * 2, i * 0.2, detections, labels, fresh=i < 3)
    (track,) = tracker.tracks.values()
    assert track.readings == 2  # frames 1 and 2 (frame 0 spawned the track)
    assert track.seconds_seen == pytest.approx(5 * 0.2)
