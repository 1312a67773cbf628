"""Tracks: the label vote, the longest-held label, stitching segment pieces, the tracker."""

from __future__ import annotations

import numpy as np
import pytest

from worker.pipeline.gating import MAX_CARRIED
from worker.pipeline.track import (
    LOST_AFTER_S,
    REREAD_EVERY,
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
    # the frame that started each track counts too, once the tracker confirms it
    assert by_label[U].readings == 20 and by_label[U].first_frame_index == 0
    assert by_label[U].seconds_seen == pytest.approx(20 * 0.2)
    assert by_label[M].seconds[M] == pytest.approx(20 * 0.2)


@pytest.mark.parametrize("frames", [2, 3, 7])
def test_a_face_seen_on_n_samples_counts_n_sample_periods(frames: int) -> None:
    tracker = FaceTracker(0.2, 5.0)
    late = []
    for i in range(frames + 3):  # seen on the first ``frames`` samples, then gone
        boxes = [(10 + 4 * i, 50, 90 + 4 * i, 150)] if i < frames else []
        detections, labels = frame_faces(boxes, [U] * len(boxes))
        keys = [face.track_key for face in tracker.update(i * 2, i * 0.2, detections, labels)]
        late.append(tracker.late_keys((i - 1) * 2))
        if i == 0:
            assert keys == [None]  # ByteTrack confirms on the second frame ...
    (track,) = tracker.tracks.values()
    assert track.seconds_seen == pytest.approx(frames * 0.2)
    assert track.readings == frames and (track.first_s, track.first_frame_index) == (0.0, 0)
    # ... and then names the first frame's face, whose record was already made
    assert late[1] == {0: track.key} and not any(late[2:])


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
    assert track.readings == 3  # frames 0, 1 and 2
    assert track.seconds_seen == pytest.approx(6 * 0.2)


def classify_at(
    tracker: FaceTracker, i: int, box: tuple[float, float, float, float], label: str
) -> bool:
    """Sample ``i`` of one face through held_labels and update, as analyze_frames does;
    True when the classifier had to read the face."""
    detections, read = frame_faces([box], [label])
    held = tracker.held_labels(i * 0.2, detections)
    labels = read if held is None else held.merge(read.select(held.need))
    tracker.update(i * 2, i * 0.2, detections, labels)
    return held is None or bool(held.need[0])


def test_a_settled_track_is_read_after_a_grid_sample_and_now_and_then() -> None:
    tracker = FaceTracker(0.2, 5.0, settle=True)
    box = (10, 50, 90, 150)
    grid = MAX_CARRIED
    samples = grid + 2 * REREAD_EVERY
    read = [i for i in range(samples) if classify_at(tracker, i, box, M)]
    # 0-1 settle it; re-read every REREAD_EVERY samples; settling starts over on the
    # gate's grid, where every face is read until two readings agree again
    rereads = [i for i in range(REREAD_EVERY, samples, REREAD_EVERY) if i % grid]
    assert read == sorted([0, 1, grid, grid + 1, *rereads])
    (track,) = tracker.tracks.values()
    assert track.readings == len(read)  # held faces count for time, not as readings
    assert track.seconds_seen == pytest.approx(samples * 0.2) and track.label == M
    assert tracker.held_faces == samples - len(read) and tracker.held_elsewhere == 0


def test_a_settled_face_is_followed_and_read_again_when_its_box_changes_size() -> None:
    tracker = FaceTracker(0.2, 5.0, settle=True)
    read = [i for i in range(5) if classify_at(tracker, i, (10, 50, 90, 150), U)]
    assert read == [0, 1]
    # walking on at the same size: the settled label follows the face
    assert not classify_at(tracker, 2, (30, 50, 110, 150), U)
    # a mask goes on at sample 3 and the box grows by a fifth: read again at once
    labels = [(M, (30, 50, 110, 170))] * 7
    read = [i for i, (label, box) in zip(range(3, 10), labels, strict=True)
            if classify_at(tracker, i, box, label)]
    assert read == [3, 4, 5]  # 3-4 settle the new label (5: the periodic re-read)
    (track,) = tracker.tracks.values()
    assert track.vote.label == M


def test_an_unsure_track_is_read_every_time() -> None:
    tracker = FaceTracker(0.2, 5.0, settle=True)
    detections, _ = frame_faces([(10, 50, 90, 150)], [M])
    unsure = FaceLabels(CLASSES, np.array([[0.1, 0.7, 0.2]], np.float32))
    for i in range(12):
        assert tracker.held_labels(i * 0.2, detections) is None
        tracker.update(i * 2, i * 0.2, detections, unsure)
    assert tracker.held_faces == 0


def test_a_face_hidden_for_under_lost_after_s_stays_one_track() -> None:
    tracker = FaceTracker(0.2, 5.0)
    # 1.6 s without the face, then back at nearly the same place (woman-puts-on-masks.mp4)
    hidden = range(21, 29)
    for i in range(40):
        box = (437, 124, 776, 469) if i <= 20 else (432, 168, 773, 461)
        boxes = [] if i in hidden else [box]
        detections, labels = frame_faces(boxes, [U if i <= 20 else M] * len(boxes))
        tracker.update(i * 2, i * 0.2, detections, labels)
    (track,) = tracker.tracks.values()
    assert track.seconds_seen == pytest.approx((40 - len(hidden)) * 0.2)
    assert track.seconds[U] > 0 and track.seconds[M] > 0  # one person, who masked up


def test_a_newcomer_as_an_old_track_ends_counts_its_first_frame() -> None:
    # One face leaves; another appears elsewhere on each later sample in turn. On the
    # update where the first one's track is dropped, the new track may take its memory:
    # the newcomer must still count from its first frame (it lost one sample at random).
    for start in range(6, 30):
        tracker = FaceTracker(0.2, 5.0)
        for i in range(start + 8):
            boxes = [(10.0, 50.0, 90.0, 150.0)] if i < 5 else []
            if i >= start:
                boxes.append((600.0, 300.0, 680.0, 400.0))
            detections, labels = frame_faces(boxes, [M] * len(boxes))
            tracker.update(i, i * 0.2, detections, labels)
        newcomer = max(tracker.tracks.values(), key=lambda track: track.key)
        assert newcomer.seconds_seen == pytest.approx(8 * 0.2), start
