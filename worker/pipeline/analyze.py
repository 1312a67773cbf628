"""Frames in, per-frame compliance records out: detection and classification glued together."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from maskwatch.core.analysis import AnalysisSettings
from maskwatch.core.labels import CLASS_NOT_FACE, Label
from maskwatch.core.records import FaceRecord, FrameRecord
from worker.pipeline.classify import CNNMaskClassifier, MaskClassifier
from worker.pipeline.decode import Frame
from worker.pipeline.detect import FaceDetector, RegionDetector, build_detector
from worker.pipeline.device import configure_threads, resolve_device
from worker.pipeline.gating import FRAME_ANALYSED, FRAME_CARRIED, FRAME_TRACKED, MotionGate
from worker.pipeline.regions import FULL, Plan, SparsePlanner, outside
from worker.pipeline.track import FaceTracker
from worker.pipeline.types import Detections, FaceLabels

logger = logging.getLogger(__name__)


@dataclass
class Models:
    """The per-process heavy objects: build once, reuse for every frame and job."""

    detector: FaceDetector
    classifier: MaskClassifier
    device: torch.device


def load_models(
    settings: AnalysisSettings, checkpoint: Path, device: str = "auto", threads: int = 0
) -> Models:
    """Build MTCNN and our CNN on the chosen device (call once per process, after any fork)."""
    configure_threads(threads)
    torch_device = resolve_device(device)
    detector = build_detector(settings.detector_config(), torch_device)
    classifier = CNNMaskClassifier.from_file(checkpoint, torch_device, settings.mirror_faces)
    logger.info("models loaded on %s (classes %s)", torch_device, classifier.class_names)
    return Models(detector=detector, classifier=classifier, device=torch_device)


def classifier_for(classifier: MaskClassifier, settings: AnalysisSettings) -> MaskClassifier:
    """The classifier reading faces as ``settings`` ask (mirrored or not), same network."""
    if isinstance(classifier, CNNMaskClassifier) and classifier.mirror != settings.mirror_faces:
        return classifier.reading(settings.mirror_faces)
    return classifier


def frame_record(
    frame: Frame,
    detections: Detections,
    labels: FaceLabels,
    box_scale: float = 1.0,
    track_keys: Sequence[int | None] | None = None,
) -> FrameRecord:
    """Count one frame's faces by label and keep each face's box and scores.

    Boxes the classifier calls ``not_face`` are dropped first (``drop_non_faces``).
    ``box_scale`` maps the decoded frame's pixels back to the source's (when ffmpeg scaled it).
    ``track_keys`` gives each kept face's track, when the faces were tracked.
    """
    detections, labels = drop_non_faces(detections, labels)
    faces: list[FaceRecord] = []
    counts: dict[str, int] = dict.fromkeys(Label, 0)
    keys = list(track_keys) if track_keys is not None else [None] * len(detections)
    for box, face_prob, label, label_prob, track_key in zip(
        detections.xyxy,
        detections.confidence,
        labels.labels,
        labels.label_confidence,
        keys,
        strict=True,
    ):
        counts[label] += 1
        x1, y1, x2, y2 = (round(float(v) * box_scale, 1) for v in box)
        faces.append(
            FaceRecord(
                x1=x1,
                y1=y1,
                x2=x2,
                y2=y2,
                label=label,
                score=round(float(face_prob) * float(label_prob), 4),
                face_prob=round(float(face_prob), 4),
                track_key=track_key,
            )
        )
    return FrameRecord(
        frame_index=frame.frame_index,
        timestamp_s=round(frame.timestamp_s, 4),
        faces=len(faces),
        masked=counts[Label.WITH_MASK],
        unmasked=counts[Label.WITHOUT_MASK],
        incorrect=counts[Label.INCORRECT_MASK],
        detections=faces,
    )


NOT_FACE_VETO = 0.5  # a box is dropped when the classifier gives not_face at least this


def kept_faces(labels: FaceLabels) -> np.ndarray:
    """(N,) bool: the faces ``drop_non_faces`` keeps."""
    if CLASS_NOT_FACE not in labels.class_names or not len(labels):
        return np.ones(len(labels), bool)
    return labels.probabilities[:, labels.class_names.index(CLASS_NOT_FACE)] < NOT_FACE_VETO


def drop_non_faces(detections: Detections, labels: FaceLabels) -> tuple[Detections, FaceLabels]:
    """Drop the boxes a classifier with a ``not_face`` class calls not a face.

    A box goes when ``not_face`` holds at least ``NOT_FACE_VETO`` of its probability (a
    majority, not a plurality: measured in docs/model-card.md, it keeps the gain on the
    validation scenes and vetoes fewer real faces on footage). The kept faces keep their mask
    probabilities as they are (the ``not_face`` share is zeroed, not spread over the others),
    so a face's label probability, and the score built from it, is lower the more the
    classifier doubts it is a face.
    """
    if CLASS_NOT_FACE not in labels.class_names or not len(labels):
        return detections, labels
    column = labels.class_names.index(CLASS_NOT_FACE)
    keep = kept_faces(labels)
    kept = labels.select(keep)
    probabilities = kept.probabilities.copy()
    probabilities[:, column] = 0.0
    return detections.select(keep), replace(kept, probabilities=probabilities)


def read_faces(
    classifier: MaskClassifier,
    frame: Frame,
    detections: Detections,
    tracker: FaceTracker | None = None,
) -> FaceLabels:
    """Classify a frame's faces, but for those the tracker holds a settled label for."""
    held = tracker.held_labels(frame.timestamp_s, detections) if tracker is not None else None
    if held is None:
        return classifier.classify(frame.image, detections.xyxy)
    return held.merge(classifier.classify(frame.image, detections.xyxy[held.need]))


def analyze_frames(
    frames: Iterable[Frame],
    models: Models,
    box_scale: float = 1.0,
    tracker: FaceTracker | None = None,
    own_from_s: float = 0.0,
    gate: MotionGate | None = None,
    own_until_s: float | None = None,
) -> Iterator[FrameRecord]:
    """Detect and classify the faces of each frame, in order; track them when asked.

    Args:
        tracker: links the faces into tracks; each face record then names its track.
            A frame's record then comes after the next frame is tracked: the tracker
            confirms a track one frame after the face that started it.
        own_from_s: frames before this time are warm-up for the tracker only (a segment
            starting later in the footage): they are analysed but not yielded.
        gate: when given, frames are detected sparsely (worker/pipeline/regions.py): a frame
            the gate finds unchanged is not detected nor classified, the last frame's faces
            are carried over (and tracked as seen again); a frame that changed in part is
            detected only there ("tracked"), its other faces carried.
        own_until_s: frames from this time on are look-ahead for the tracker only (a
            segment ending before the footage does): they confirm the tracks started on
            the segment's last frames, and are not yielded.
    """
    records = _analyzed_frames(frames, models, box_scale, tracker, own_from_s, gate, own_until_s)
    if tracker is None:
        yield from records
        return
    held = None
    for record in records:  # one behind: the next frame names late-confirmed tracks
        if held is not None:
            yield tracker.with_late_keys(held)
        held = record
    if held is not None:
        yield tracker.with_late_keys(held)


def _analyzed_frames(
    frames: Iterable[Frame],
    models: Models,
    box_scale: float,
    tracker: FaceTracker | None,
    own_from_s: float,
    gate: MotionGate | None,
    own_until_s: float | None,
) -> Iterator[FrameRecord]:
    warming = tracker is not None
    planner = None
    if gate is not None:
        planner = SparsePlanner(gate, regions=isinstance(models.detector, RegionDetector))
    last: tuple[Detections, FaceLabels] | None = None
    for frame in frames:
        plan = FULL if planner is None else planner.plan(
            frame.image, frame.timestamp_s, None if last is None else last[0].xyxy
        )
        fresh: bool | np.ndarray = True
        if plan.mode == FRAME_CARRIED and last is not None:
            detections, labels = last
            fresh = False
        elif plan.mode == FRAME_TRACKED and last is not None:
            detections, labels, fresh = detect_in_regions(frame, models, plan, last, tracker)
            if plan.follow and len(detections) < len(last[0]) and planner is not None:
                plan = planner.full()  # a followed face was lost: look at the whole frame
        if plan.mode == FRAME_ANALYSED or last is None:
            detections = detect_whole(frame, models, planner, last)
            labels = read_faces(models.classifier, frame, detections, tracker)
            fresh = True
        last = (detections, labels)
        mode = plan.mode
        if tracker is None:
            yield replace(frame_record(frame, detections, labels, box_scale), mode=mode)
            continue
        own = frame.timestamp_s >= own_from_s and (
            own_until_s is None or frame.timestamp_s < own_until_s
        )
        if own and warming:
            tracker.end_warmup()
            warming = False
        if not isinstance(fresh, bool):
            keep = kept_faces(labels)
            fresh = fresh[keep]
        detections, labels = drop_non_faces(detections, labels)
        tracked = tracker.update(
            frame.frame_index,
            frame.timestamp_s,
            detections,
            labels,
            own=own,
            fresh=fresh,
        )
        if own:
            keys = [face.track_key for face in tracked]
            yield replace(frame_record(frame, detections, labels, box_scale, keys), mode=mode)


def detect_whole(
    frame: Frame,
    models: Models,
    planner: SparsePlanner | None,
    last: tuple[Detections, FaceLabels] | None,
) -> Detections:
    """A whole frame's faces. In sparse analysis (a planner) the merged pair's second,
    masked-face detector runs only where it can add a face: on every ``SEARCH_EVERY``-th
    sample (numbered from the footage start, so segments detect as one run), when the last
    frame held a masked (or wrongly masked) face or none, and when the first detector finds
    fewer faces than the last frame held. The frame is then searched as one rectangle
    (``detect_regions``, ``detect_in_rect``'s ``expected``), which gives what ``detect``
    does when every detector runs."""
    detector = models.detector
    if (
        planner is None
        or last is None
        or not isinstance(detector, RegionDetector)
        or planner.search_due(frame.timestamp_s)
        or any(label in _MASK_WORN for label in last[1].labels)
    ):
        return detector.detect([frame.image])[0]
    height, width = frame.image.shape[:2]
    return detector.detect_regions(frame.image, [(0, 0, width, height)], [len(last[0])])


_MASK_WORN = (Label.WITH_MASK.value, Label.INCORRECT_MASK.value)


def detect_in_regions(
    frame: Frame,
    models: Models,
    plan: Plan,
    last: tuple[Detections, FaceLabels],
    tracker: FaceTracker | None = None,
) -> tuple[Detections, FaceLabels, np.ndarray]:
    """A tracked frame's faces: the last frame's outside the plan's rectangles, carried with
    their labels, then those the detector finds inside them, classified (but for those the
    tracker holds a settled label for, as on a whole frame: ``read_faces``).

    Returns the detections, their labels, and which faces are fresh (not carried).
    """
    detector = models.detector
    assert isinstance(detector, RegionDetector)
    carried = outside(last[0].xyxy, plan.rects)
    inside = [~outside(last[0].xyxy, [rect]) for rect in plan.rects]
    expected = [int(held.sum()) for held in inside]
    follow = None if plan.search else [last[0].xyxy[held] for held in inside]
    found = (
        detector.detect_regions(frame.image, plan.rects, expected, follow)
        if plan.rects
        else Detections.empty()
    )
    labels = read_faces(models.classifier, frame, found, tracker)
    kept = last[0].select(carried)
    detections = Detections.concat([kept, found])
    both = last[1].select(carried).extended(labels)
    fresh = np.concatenate([np.zeros(len(kept), bool), np.ones(len(found), bool)])
    return detections, both, fresh
