"""Faces linked across analysed frames into tracks (one appearance of a person each).

A track's label is a confidence-weighted vote over a sliding window of the classifier's
readings, so a person who puts a mask on changes label once, not at every flicker. Tracks
are followed with roboflow's ByteTrack (the ``trackers`` package, supervision's successor
for tracking); stitching the tracks of neighbouring segments is a pure function here too.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from maskwatch.core.labels import MASK_LABELS, Label
from maskwatch.core.records import FrameRecord, TrackRecord
from worker.pipeline.gating import grid_start, sample_number
from worker.pipeline.types import Detections, FaceLabels

if TYPE_CHECKING:
    from trackers import ByteTrackTracker

    from maskwatch.core.analysis import AnalysisSettings
    from worker.pipeline.decode import MediaInfo

# Readings a track's label is voted over; also the frames a segment starts early, so that
# its tracks and votes are warm at its first own frame (see ``warmup_samples``).
VOTE_WINDOW = 7
# A track unseen this long is over (ByteTrack's lost-track buffer). 2 s, not 1.5: a person
# hidden for 1.6 s (woman-puts-on-masks.mp4 cuts away to masks alone and back to her, at
# the same place) stayed one track; two people crossing stay two.
LOST_AFTER_S = 2.0
# A detection this confident (face probability) may start a track.
START_CONFIDENCE = 0.5
# Two tracks of neighbouring segments seen at the same frame are one when their boxes
# overlap this much (the same detector on the same frame gives the same box).
HANDOFF_IOU = 0.5
# A track starting within LOST_AFTER_S of the end of one of the previous segment is its
# continuation when their boxes overlap this much (the tracker would have kept its id).
RESUME_IOU = 0.3
# Classify a track until its label is settled, then only now and then (not --exhaustive).
# A track is settled when its last SETTLE_READINGS classifier readings since the last
# sample of the gate's forced grid (gating.MAX_CARRIED) agree, each at least
# SETTLE_CONFIDENCE sure; its faces then take the mean of those readings instead of being
# read (``FaceTracker.held_labels``). A segment's warm-up starts on that grid, so it settles
# exactly as one run does: settling depends only on readings since the last grid sample.
SETTLE_READINGS = 2
SETTLE_CONFIDENCE = 0.8
# A settled track is read again on its first analysed frame at or after every sample that
# is a multiple of REREAD_EVERY (a disagreeing reading unsettles it).
REREAD_EVERY = 5
# A face follows a settled track when its box overlaps the track's box on the last analysed
# frame by SETTLED_IOU; it is read again all the same when its box's width or height
# changed by more than SETTLED_SIZE_CHANGE times since the last reading, or its face
# probability by more than SETTLED_FACE_PROB_CHANGE (a face turning, a hand before it).
SETTLED_IOU = 0.5
SETTLED_SIZE_CHANGE = 1.1
SETTLED_FACE_PROB_CHANGE = 0.05
# Ties in seconds are broken towards the least compliant label.
_LABEL_PRIORITY = (
    Label.WITHOUT_MASK.value, Label.INCORRECT_MASK.value, Label.WITH_MASK.value
)


def warmup_samples() -> int:
    """Sampled frames a segment analyses before its own start (not stored)."""
    return VOTE_WINDOW


def dominant_label(seconds: dict[str, float]) -> str:
    """The label held the longest; ties go to the least compliant one."""
    return max(_LABEL_PRIORITY, key=lambda label: (seconds.get(label, 0.0), -_rank(label)))


def _rank(label: str) -> int:
    return _LABEL_PRIORITY.index(label)


class LabelVote:
    """Confidence-weighted vote over the last ``window`` readings of one track."""

    def __init__(self, window: int = VOTE_WINDOW) -> None:
        self._readings: deque[tuple[str, float]] = deque(maxlen=window)
        self.label: str | None = None

    def add(self, label: str, weight: float) -> str:
        """Add a reading; returns the label the track now holds.

        The held label changes only when another label's summed weight over the window
        is strictly larger, so an even split keeps what the track had.
        """
        self._readings.append((label, max(float(weight), 1e-6)))
        totals: dict[str, float] = {}
        for reading, w in self._readings:
            totals[reading] = totals.get(reading, 0.0) + w
        best = max(totals, key=lambda name: (totals[name], name == self.label))
        if self.label is None or totals[best] > totals.get(self.label, 0.0):
            self.label = best
        return self.label


@dataclass(frozen=True)
class Reading:
    """One classifier reading of a track's face, as settling needs it."""

    sample: int  # the sample's number from the footage start
    probabilities: np.ndarray  # (C,) the classifier's row (not_face zeroed)
    box: tuple[float, float, float, float]
    face_prob: float


@dataclass
class Track:
    """One segment's view of one track; seconds count only the segment's own frames."""

    key: int  # the tracker's id, unique within the segment
    vote: LabelVote = field(default_factory=LabelVote)
    first_frame_index: int | None = None
    first_s: float | None = None
    last_frame_index: int | None = None
    last_s: float | None = None
    seconds_seen: float = 0.0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MASK_LABELS, 0.0))
    readings: int = 0
    box: tuple[float, float, float, float] | None = None  # the best-scored face's box
    box_score: float = -1.0
    # Where the track was at the last warm-up frame: (frame_index, box), for stitching.
    handoff: tuple[int, tuple[float, float, float, float]] | None = None
    # The latest readings that agree (same label, each sure enough), oldest first.
    streak: list[Reading] = field(default_factory=list)
    # Where the track's face was on the last analysed frame it was seen on (and when).
    seen: tuple[int, tuple[float, float, float, float]] | None = None

    def settled_reading(self, since_sample: int, reread_from: int) -> Reading | None:
        """The last reading when the track's label is settled since ``since_sample`` and
        was read at or after ``reread_from``; else None."""
        recent = [r for r in self.streak if r.sample >= since_sample]
        if len(recent) < SETTLE_READINGS or recent[-1].sample < reread_from:
            return None
        if self.seen is None or self.seen[0] < since_sample:
            return None
        return recent[-1]

    def settled_probabilities(self) -> np.ndarray:
        """The mean of the settling readings: what a face of the track is taken to read."""
        rows = [r.probabilities for r in self.streak[-SETTLE_READINGS:]]
        return np.mean(np.stack(rows), axis=0).astype(np.float32)

    def add_reading(self, reading: Reading, since_sample: int) -> None:
        """Extend the streak with a sure reading of its label, or start it over."""
        if reading.sample < since_sample:
            return
        row = reading.probabilities
        sure = float(row.max()) >= SETTLE_CONFIDENCE
        streak = [r for r in self.streak if r.sample >= since_sample]
        if streak and int(streak[-1].probabilities.argmax()) != int(row.argmax()):
            streak = []
        self.streak = (streak + [reading])[-SETTLE_READINGS:] if sure else []

    @property
    def label(self) -> str:
        if not any(self.seconds.values()):  # a still image: no time, only the vote
            return self.vote.label or Label.WITHOUT_MASK.value
        return dominant_label(self.seconds)

    def record(self, segment_index: int, box_scale: float = 1.0) -> TrackRecord:
        """The stored form of a track with own frames; boxes in the source's pixels."""
        if self.first_frame_index is None or self.box is None:
            raise ValueError(f"track {self.key} has no frame of its segment")
        assert self.first_s is not None and self.last_s is not None
        assert self.last_frame_index is not None
        handoff = None
        if self.handoff is not None:
            handoff = (self.handoff[0], _scaled(self.handoff[1], box_scale))
        return TrackRecord(
            segment_index=segment_index,
            segment_track=self.key,
            first_frame_index=self.first_frame_index,
            first_s=round(self.first_s, 4),
            last_frame_index=self.last_frame_index,
            last_s=round(self.last_s, 4),
            seconds_seen=round(self.seconds_seen, 4),
            seconds_masked=round(self.seconds[Label.WITH_MASK.value], 4),
            seconds_unmasked=round(self.seconds[Label.WITHOUT_MASK.value], 4),
            seconds_incorrect=round(self.seconds[Label.INCORRECT_MASK.value], 4),
            readings=self.readings,
            label=self.label,
            box=_scaled(self.box, box_scale),
            box_score=round(self.box_score, 4),
            handoff=handoff,
        )


    @property
    def stored(self) -> bool:
        return self.first_frame_index is not None


@dataclass(frozen=True)
class TrackedFace:
    """What the tracker says of one face of a frame."""

    track_key: int | None  # None: not (yet) part of a confirmed track
    label: str  # the face's own reading
    track_label: str | None  # the track's voted label after this reading



class FaceTracker:
    """Links one segment's faces into tracks and keeps each track's figures.

    With ``settle``, a face that overlaps where a settled track's face was last read (and
    is about as sure a face) is not classified: ``held_labels`` gives it the track's
    settled reading. Faces are vetoed as ``not_face`` only by a reading, so a settled
    track's faces are faces (its readings were). The tracker then links it as any other
    face; should it link it to another track than the one it was held from (not seen on
    the clips measured), it keeps the held label and still counts for that track's time.

    Args:
        sample_period_s: seconds one sampled frame stands for (1 / sample rate); 0 for a
            still image.
        sample_fps: the sample rate, for the tracker's motion model.
        still: a single image: every face is a person of its own (there is no motion to
            confirm a track with).
        settle: classify a track's faces only until its label is settled (see above).
    """

    def __init__(
        self,
        sample_period_s: float,
        sample_fps: float,
        still: bool = False,
        settle: bool = False,
    ) -> None:
        from trackers import ByteTrackTracker  # scipy and friends: only where faces are tracked

        self.sample_period_s = sample_period_s
        self._tracker: ByteTrackTracker = ByteTrackTracker(
            lost_track_buffer=max(1, round(LOST_AFTER_S * 30)),
            frame_rate=sample_fps,
            track_activation_threshold=START_CONFIDENCE,
            high_conf_det_threshold=START_CONFIDENCE,
            minimum_consecutive_frames=2,
        )
        self.still = still
        self.settle = settle and not still and sample_period_s > 0
        self.tracks: dict[int, Track] = {}
        self.held_faces = 0  # faces given a settled track's label instead of a reading
        self.held_elsewhere = 0  # of those, faces the tracker linked to another track
        self._held_for: dict[tuple[float, ...], int] = {}  # held face's box -> its track
        self._settle_since_now = 0
        # faces of the last update that started a tracklet, by tracklet
        self._starting: dict[Any, _Sighting] = {}
        self._spawned_now: dict[Any, int] = {}
        self._late: dict[int, dict[int, int]] = {}  # see late_keys
        self._last_warmup: list[tuple[int, int, tuple[float, float, float, float]]] = []

    def sample_number(self, timestamp_s: float) -> int:
        """The number of the sample at ``timestamp_s`` from the footage start (as gating)."""
        return sample_number(timestamp_s, self.sample_period_s) if self.sample_period_s else 0

    def settle_since(self, timestamp_s: float) -> int:
        """The sample from which readings count for settling at ``timestamp_s``."""
        return grid_start(self.sample_number(timestamp_s))

    def held_labels(self, timestamp_s: float, detections: Detections) -> HeldLabels | None:
        """Which of a frame's faces need the classifier; the others' settled readings.

        A face is held for a settled track when its box overlaps the track's box on the
        last analysed frame by SETTLED_IOU or more (the best overlap wins, one face per
        track), and its box's size and face probability are close to those of the last
        reading (SETTLED_SIZE_CHANGE, SETTLED_FACE_PROB_CHANGE). None when every face
        needs reading.
        """
        self._held_for = {}
        if not self.settle or not len(detections):
            return None
        since = self.settle_since(timestamp_s)
        reread_from = self.sample_number(timestamp_s) // REREAD_EVERY * REREAD_EVERY
        settled = [
            (key, reading)
            for key, track in self.tracks.items()
            if (reading := track.settled_reading(since, reread_from)) is not None
        ]
        if not settled:
            return None
        pairs = sorted(
            (
                (box_iou(self.tracks[key].seen[1], detections.xyxy[i]), i, key)  # type: ignore[index]
                for key, reading in settled
                for i in range(len(detections))
                if _looks_as_read(reading, detections.xyxy[i], float(detections.confidence[i]))
            ),
            key=lambda pair: (-pair[0], pair[1], pair[2]),
        )
        held: dict[int, int] = {}
        for iou, face, key in pairs:
            if iou < SETTLED_IOU:
                break
            if face not in held and key not in held.values():
                held[face] = key
        if not held:
            return None
        rows = {face: self.tracks[key].settled_probabilities() for face, key in held.items()}
        self._held_for = {_box_key(detections.xyxy[f]): key for f, key in held.items()}
        return HeldLabels(np.array([i not in held for i in range(len(detections))]), rows)

    def update(
        self,
        frame_index: int,
        timestamp_s: float,
        detections: Detections,
        labels: FaceLabels,
        *,
        own: bool = True,
        fresh: bool | np.ndarray = True,
    ) -> list[TrackedFace]:
        """Track one analysed frame's faces (already cleared of non-faces), in their order.

        ByteTrack confirms a track on its second frame; the face that started it, on the
        update before, then counts for the track as well (before this frame's face), and
        ``late_keys`` gives that face's track to the caller.

        Args:
            own: False for a warm-up frame before the segment's start (or a look-ahead
                frame after its end): the tracker and the votes see it, the track figures
                do not.
            fresh: False when the faces are carried over from an earlier frame (gating):
                they count for time and the vote as a new reading would, but not as one.
                Per face, an (N,) bool array, for a frame detected only in regions.
                (A face whose label ``held_labels`` held is not a reading either.)
        """
        count = len(detections)
        face_labels = labels.labels
        read = labels.read
        weights = (
            detections.confidence * labels.label_confidence if count else np.zeros((0,))
        )
        sightings = [
            _Sighting(
                frame_index=frame_index,
                timestamp_s=timestamp_s,
                index=i,
                label=face_labels[i],
                weight=float(weights[i]),
                box=_box_key(detections.xyxy[i]),  # type: ignore[arg-type]
                probabilities=labels.probabilities[i],
                face_prob=float(detections.confidence[i]),
                read=bool(read[i]),
                fresh=fresh if isinstance(fresh, bool) else bool(fresh[i]),
                own=own,
            )
            for i in range(count)
        ]
        keys, spawned = self._associate(detections, timestamp_s)
        self._settle_since_now = self.settle_since(timestamp_s)
        late = {key: face for key, face in spawned.items() if key not in self.tracks}
        if not own:
            self._last_warmup = []
        out: list[TrackedFace] = []
        for sighting, key in zip(sightings, keys, strict=True):
            if key is None:
                out.append(TrackedFace(None, sighting.label, None))
                continue
            first = late.pop(key, None)
            if first is not None:  # the face that started the track, one update ago
                self._observe(key, first, late=True, handoff=not first.own and own)
                if first.own:
                    self._late.setdefault(first.frame_index, {})[first.index] = key
            held = self._observe(key, sighting)
            out.append(TrackedFace(key, sighting.label, held))
        # faces that started a track now (confirmed, or not, on the next update)
        self._starting = {
            tracklet: sightings[face] for tracklet, face in self._spawned_now.items()
        }
        return out

    def _associate(
        self, detections: Detections, timestamp_s: float
    ) -> tuple[list[int | None], dict[int, _Sighting]]:
        """Each face's confirmed track (None if none yet), and the faces of the last update
        that started the tracks confirmed now, by track."""
        import supervision as sv

        count = len(detections)
        if self.still:
            return [len(self.tracks) + i + 1 for i in range(count)], {}
        tracked = sv.Detections(
            xyxy=detections.xyxy.astype(np.float32).reshape(-1, 4),
            confidence=detections.confidence.astype(np.float32).reshape(-1),
            data={"face": np.arange(count)},
        )
        # The tracklets before this update, held so that none is freed during it: a freed
        # tracklet's id may be reused by a new one, which would then look old (seen: one
        # track's first face lost in about one run of six, at random).
        existing = list(self._tracker.tracks)
        before = {id(t) for t in existing}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = self._tracker.update(tracked, timestamp=timestamp_s)
        keys: list[int | None] = [None] * count
        tracker_ids = [] if result.tracker_id is None else result.tracker_id.tolist()
        for face, tracker_id in zip(result.data.get("face", []), tracker_ids, strict=True):
            if tracker_id >= 0:
                keys[int(face)] = int(tracker_id)
        # A tracklet started by an unmatched face is not reported with it: find its face
        # by its first box, which is that face's box.
        self._spawned_now = {}
        boxes = tracked.xyxy
        for tracklet in self._tracker.tracks:
            if id(tracklet) in before:
                continue
            start = np.asarray(tracklet.get_state_bbox(), np.float32)
            matches = np.flatnonzero(np.all(np.isclose(boxes, start, atol=1e-3), axis=1))
            if len(matches):
                self._spawned_now[tracklet] = int(matches[0])
        confirmed = {
            int(t.tracker_id): self._starting[t]
            for t in self._tracker.tracks
            if t in self._starting and t.tracker_id >= 0
        }
        return keys, confirmed

    def with_late_keys(self, record: FrameRecord) -> FrameRecord:
        """``record`` with the tracks confirmed since it was made (``late_keys``)."""
        late = self._late.pop(record.frame_index, {})
        if not late:
            return record
        faces = [
            replace(face, track_key=late[i]) if i in late else face
            for i, face in enumerate(record.detections)
        ]
        return replace(record, detections=faces)

    def late_keys(self, frame_index: int) -> dict[int, int]:
        """{face index: track} for the faces of own frame ``frame_index`` that started a
        track the update after confirmed (their frame's record was made before)."""
        return dict(self._late.get(frame_index, {}))

    def _observe(
        self, key: int, sighting: _Sighting, late: bool = False, handoff: bool = False
    ) -> str:
        """Count one face for track ``key``; returns the track's voted label after it."""
        track = self.tracks.setdefault(key, Track(key))
        held = track.vote.add(sighting.label, sighting.weight)
        if sighting.fresh:
            track.seen = (self.sample_number(sighting.timestamp_s), sighting.box)
        if sighting.fresh and sighting.read and self.settle:
            sample = self.sample_number(sighting.timestamp_s)
            reading = Reading(sample, sighting.probabilities, sighting.box, sighting.face_prob)
            track.add_reading(reading, self._settle_since_now)
        elif sighting.fresh and not sighting.read:
            self.held_faces += 1
            self.held_elsewhere += int(self._held_for.get(sighting.box) != key)
        if sighting.own:
            self._record(
                track,
                sighting.frame_index,
                sighting.timestamp_s,
                held,
                sighting.box,
                sighting.weight,
                sighting.fresh and sighting.read,
            )
        elif handoff:  # the last warm-up frame's face, confirmed on the segment's first
            track.handoff = (sighting.frame_index, sighting.box)
        elif not late:
            self._last_warmup.append((key, sighting.frame_index, sighting.box))
        return held

    def end_warmup(self) -> None:
        """The segment's own frames start now: note where each track was, for stitching."""
        for key, frame_index, box in self._last_warmup:
            self.tracks[key].handoff = (frame_index, box)
        self._last_warmup = []

    def _record(
        self,
        track: Track,
        frame_index: int,
        timestamp_s: float,
        held: str,
        box: tuple[float, ...],
        score: float,
        fresh: bool,
    ) -> None:
        if track.first_frame_index is None:
            track.first_frame_index, track.first_s = frame_index, timestamp_s
        track.last_frame_index, track.last_s = frame_index, timestamp_s
        track.seconds_seen += self.sample_period_s
        track.seconds[held] += self.sample_period_s
        track.readings += int(fresh)
        if score > track.box_score:
            track.box, track.box_score = box, score  # type: ignore[assignment]


@dataclass(frozen=True)
class _Sighting:
    """One face of one update, as a track counts it."""

    frame_index: int
    timestamp_s: float
    index: int  # the face's place in its frame
    label: str
    weight: float
    box: tuple[float, float, float, float]
    probabilities: np.ndarray
    face_prob: float
    read: bool
    fresh: bool
    own: bool


@dataclass(frozen=True)
class HeldLabels:
    """Which faces of a frame need the classifier, and the settled readings of the others.

    Attributes:
        need: (N,) bool, True for a face the classifier must read.
        rows: the settled track's mean reading of each face that is not read, by index.
    """

    need: np.ndarray
    rows: dict[int, np.ndarray]

    def merge(self, read: FaceLabels) -> FaceLabels:
        """All faces' labels: the classifier's ``read`` of the needed ones, the rest held."""
        probabilities = np.zeros((len(self.need), len(read.class_names)), np.float32)
        probabilities[self.need] = read.probabilities
        for face, row in self.rows.items():
            probabilities[face] = row
        return FaceLabels(read.class_names, probabilities, held=~self.need)


def _looks_as_read(reading: Reading, box: Sequence[float], face_prob: float) -> bool:
    """Whether a face's box and face probability are close to those of ``reading``."""
    w0, h0 = reading.box[2] - reading.box[0], reading.box[3] - reading.box[1]
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    if min(w0, h0, w, h) <= 0:
        return False
    size = max(w / w0, w0 / w, h / h0, h0 / h)
    return (
        size <= SETTLED_SIZE_CHANGE
        and abs(face_prob - reading.face_prob) <= SETTLED_FACE_PROB_CHANGE
    )


def _box_key(box: Sequence[float] | np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in box)


def _scaled(box: tuple[float, ...], scale: float) -> tuple[float, float, float, float]:
    # rounded as stored face boxes are (frame_record), so a handoff box matches one exactly
    x1, y1, x2, y2 = (round(float(v) * scale, 1) for v in box)
    return (x1, y1, x2, y2)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class TrackPiece:
    """A stored segment track, as stitching needs it.

    Attributes:
        boxes_at: the piece's stored face boxes by frame index (at least its first and
            last frame, and the frame a later piece's handoff names).
    """

    id: int
    segment_index: int
    first_s: float
    last_s: float
    first_box: tuple[float, float, float, float]
    last_box: tuple[float, float, float, float]
    handoff: tuple[int, tuple[float, float, float, float]] | None
    boxes_at: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)


def stitch(pieces: Iterable[TrackPiece]) -> dict[int, int]:
    """Which pieces continue a piece of the segment before: {later piece id: earlier id}.

    A piece that was seen during its segment's warm-up (it has a handoff) continues the
    previous segment's piece whose box at that very frame overlaps it (IoU >= HANDOFF_IOU).
    A piece without handoff that starts within LOST_AFTER_S of where a previous-segment
    piece ended, near the segment boundary, continues it when their boxes overlap
    (IoU >= RESUME_IOU), as the tracker would have resumed it. Each earlier piece is
    continued at most once, by its best match. Chains over several segments come out as
    several pairs; the caller follows them in segment order.
    """
    by_segment: dict[int, list[TrackPiece]] = {}
    for piece in pieces:
        by_segment.setdefault(piece.segment_index, []).append(piece)
    links: dict[int, int] = {}
    for segment_index in sorted(by_segment):
        earlier = by_segment.get(segment_index - 1, [])
        if not earlier:
            continue
        boundary_s = min(p.first_s for p in by_segment[segment_index])
        candidates: list[tuple[float, int, int]] = []
        for later in by_segment[segment_index]:
            for before in earlier:
                score = _continuation(before, later, boundary_s)
                if score is not None:
                    candidates.append((score, later.id, before.id))
        taken_before: set[int] = set()
        for _score, later_id, before_id in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
            if later_id in links or before_id in taken_before:
                continue
            links[later_id] = before_id
            taken_before.add(before_id)
    return links


def _continuation(before: TrackPiece, later: TrackPiece, boundary_s: float) -> float | None:
    """How well ``later`` continues ``before`` (higher is better), or None if it does not."""
    if later.handoff is not None:
        frame_index, box = later.handoff
        seen = before.boxes_at.get(frame_index)
        if seen is None:
            return None
        iou = box_iou(seen, box)
        return 1.0 + iou if iou >= HANDOFF_IOU else None
    gap_s = later.first_s - before.last_s
    if not 0 < gap_s <= LOST_AFTER_S or later.first_s - boundary_s > LOST_AFTER_S:
        return None
    iou = box_iou(before.last_box, later.first_box)
    return iou if iou >= RESUME_IOU else None


def label_seconds(values: dict[str, Any]) -> dict[str, float]:
    """The per-label seconds of a stored track row (masked, unmasked, incorrect)."""
    return {
        Label.WITH_MASK.value: float(values["seconds_masked"]),
        Label.WITHOUT_MASK.value: float(values["seconds_unmasked"]),
        Label.INCORRECT_MASK.value: float(values["seconds_incorrect"]),
    }


def segment_tracker(info: MediaInfo, settings: AnalysisSettings) -> FaceTracker:
    """A tracker for one segment of ``info`` analysed as ``settings`` say."""
    if info.kind != "video":
        return FaceTracker(0.0, 1.0, still=True)
    rates = [r for r in (settings.sample_fps, info.fps) if r]
    rate = min(rates) if rates else 5.0  # a video of unknown rate, sampled frame by frame
    return FaceTracker(1.0 / rate, rate, settle=not settings.exhaustive)
