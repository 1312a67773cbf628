"""Sparse detection: on a sampled frame, detect only where the answer can have changed.

The motion gate (worker/pipeline/gating.py) compares each sampled frame's small grey copy
with its reference cell by cell. The planner here turns that map into one of three plans:

- ``carried``: no cell moved; the last frame's faces are carried over (as gating always did);
- ``analysed``: the full detector over the whole frame: on the gate's forced grid samples, on
  the first frame, when most of the frame moved and it is time for a full look again, and
  when the regions would cover most of the frame anyway;
- ``tracked``: the detector only in rectangles (``Rect``), the other faces carried over:
  - a fixed camera where a small part of the frame moved (at most ``REGION_SHARE`` of its
    cells): rectangles around the connected moved cells, grown by ``MARGIN_PX`` and by any
    last face box they touch (with ``FACE_CONTEXT`` around it), so that a face at a
    region's edge is wholly inside and searched at its size. A rectangle holding known
    faces is searched (the PNet pyramid) only on every ``SEARCH_EVERY``-th sample; on the
    others its known faces are followed (RNet and ONet on boxes around their last ones,
    ``detect.detect_in_rect``), and it is searched where following loses one. A rectangle
    with no known face (someone new) is always searched;
  - a moving camera (most cells moved), when ``follow_every`` > 1 (off by default, see
    ``FOLLOW_EVERY``): rectangles around the last faces, grown by ``FOLLOW_GROW`` of
    their size for the motion between samples; a full detection every
    ``follow_every``-th such frame finds the faces that came in meanwhile.

Everything a plan depends on (the gate's reference, the last faces, the count of frames
followed) is reset by the full detection on each of the gate's forced grid samples, where a
segment's warm-up starts too, and the samples searched are numbered from the footage's start:
a job split into segments plans, follows and searches exactly as one run does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from worker.pipeline.detect import Rect
from worker.pipeline.gating import (
    CELL_PX,
    FRAME_ANALYSED,
    FRAME_CARRIED,
    FRAME_TRACKED,
    GateLook,
    MotionGate,
    sample_number,
)

# Detect in regions when at most this share of the frame's cells moved: above it the
# crops' overhead and overlap make a full detection about as cheap (measured by
# scripts/bench_people.py), and the scene is a moving camera's.
REGION_SHARE = 0.35
# ... and when the rectangles (grown, merged) cover at most this share of the frame.
REGION_AREA = 0.6
# Grown by this many frame pixels each way around the moved cells: MTCNN's windows
# need some context around a face at a region's edge.
MARGIN_PX = 32
# ... and by this share of a face's size around each face box they touch.
FACE_CONTEXT = 0.5
# A moving camera: rectangles around the last faces grown by this share of the box's
# size each way, and a full detection every this many frames so followed. Off (1: every
# such frame is detected in full): on the handheld street-crosswalk.mp4, following with a
# full detection every 3rd frame missed 49 of 356 face-frames (people come and go between
# full detections) and moved face-frame compliance from 0.5871 to 0.5505, for 20 % less
# CPU (scripts/bench_people.py, 2026-12-07); the target is within 0.01.
FOLLOW_GROW = 0.5
FOLLOW_EVERY = 1
# A fixed camera's moved rectangle that holds known faces (the last frame's) is searched
# with MTCNN's full PNet pyramid only on samples numbered (from the footage start) a
# multiple of this; on the others its known faces are followed (RNet and ONet on boxes
# around their last ones, worker/pipeline/detect.py ``detect_in_rect``), and searched
# only where following loses one. A face arriving in such a rectangle is found on the next
# search. Rectangles with no known face (someone new) are always searched.
SEARCH_EVERY = 5


@dataclass(frozen=True)
class Plan:
    """What to do with one sampled frame: a frame mode and, for ``tracked``, where to
    detect; ``follow``: the rectangles are around the last faces (a moving camera);
    ``search``: rectangles holding known faces are searched with the PNet pyramid (False:
    their known faces are followed, ``SEARCH_EVERY``)."""

    mode: str
    rects: tuple[Rect, ...] = ()
    follow: bool = False
    search: bool = True


FULL = Plan(FRAME_ANALYSED)
CARRY = Plan(FRAME_CARRIED)


@dataclass(eq=False)
class SparsePlanner:
    """Plans each sampled frame from the gate's cell map and the last frame's face boxes.

    Args:
        gate: the motion gate whose reference the planner keeps up to date.
        regions: False when the detector cannot search rectangles: tracked plans become
            full detections (gating alone).
    """

    gate: MotionGate
    regions: bool = True
    region_share: float = REGION_SHARE
    follow_every: int = FOLLOW_EVERY
    search_every: int = SEARCH_EVERY
    _followed: int = field(default=0, init=False, repr=False)

    def plan(self, image: np.ndarray, timestamp_s: float, last_boxes: np.ndarray | None) -> Plan:
        """The plan for ``image``; ``last_boxes``: the last frame's faces (None: no frame
        analysed yet), (N, 4) x1, y1, x2, y2."""
        look = self.gate.look(image, timestamp_s)
        if last_boxes is None or look.forced or look.changed is None or not self.regions:
            if last_boxes is not None and look.still:
                self.gate.carry()
                return CARRY
            return self.full(look)
        changed = look.changed
        if not changed.any():
            self.gate.carry()
            return CARRY
        height, width = image.shape[:2]
        if changed.mean() <= self.region_share:
            rects = changed_regions(changed, last_boxes, width, height)
            if covered(rects) <= REGION_AREA * width * height:
                self.gate.accept(look, changed)
                return Plan(FRAME_TRACKED, tuple(rects), search=self.search_due(timestamp_s))
            return self.full(look)
        rects = around_faces(last_boxes, width, height)
        if self._followed + 1 >= self.follow_every or covered(rects) > REGION_AREA * width * height:
            return self.full(look)
        self._followed += 1
        self.gate.accept(look)
        return Plan(FRAME_TRACKED, tuple(rects), follow=True)

    def search_due(self, timestamp_s: float) -> bool:
        """Whether rectangles holding known faces are searched on this sample: on samples
        numbered a multiple of ``search_every`` (an absolute grid, as the gate's), and on
        all when the gate cannot number samples."""
        period = self.gate.sample_period_s
        if not period or self.search_every <= 1:
            return True
        return sample_number(timestamp_s, period) % self.search_every == 0

    def full(self, look: GateLook | None = None) -> Plan:
        """A full detection of the frame looked at (``look``), or of the frame just planned
        when the faces followed there were not all found again."""
        if look is not None:
            self.gate.accept(look)
        self._followed = 0
        return FULL


def changed_regions(
    changed: np.ndarray, boxes: np.ndarray, width: int, height: int, margin: int = MARGIN_PX
) -> list[Rect]:
    """Rectangles around the connected moved cells, grown by ``margin`` and by every box
    they touch (so a face is wholly in one or outside all), merged where they overlap."""
    rects = []
    for cells in connected(changed):
        rows, cols = zip(*cells, strict=True)
        rects.append(
            grow(
                (min(cols) * CELL_PX, min(rows) * CELL_PX,
                 (max(cols) + 1) * CELL_PX, (max(rows) + 1) * CELL_PX),
                margin, width, height,
            )
        )
    faces = [grow(to_rect(box), margin + context(box), width, height) for box in boxes]
    while True:
        merged = merge_overlapping(rects)
        grown = []
        for rect in merged:
            for face in faces:
                if overlaps(rect, face):
                    rect = union(rect, face)
            grown.append(rect)
        if grown == merged and merge_overlapping(grown) == grown:
            return grown
        rects = grown


def context(box: Sequence[float] | np.ndarray) -> int:
    """Pixels to keep around a face box: half its size. MTCNN finds a face at the pyramid
    level where it is about 12 px, and a crop's pyramid stops where its shorter side is
    12 px: a face filling the crop's short side would never be searched at its size."""
    return round(FACE_CONTEXT * max(float(box[2]) - float(box[0]), float(box[3]) - float(box[1])))


def around_faces(
    boxes: np.ndarray, width: int, height: int, grow_by: float = FOLLOW_GROW
) -> list[Rect]:
    """Rectangles around each box grown by ``grow_by`` of its size each way, merged."""
    rects = []
    for box in boxes:
        x1, y1, x2, y2 = (float(v) for v in box)
        pad = grow_by * max(x2 - x1, y2 - y1)
        rects.append(grow(to_rect(box), round(pad) + MARGIN_PX, width, height))
    return merge_overlapping(rects)


def connected(cells: np.ndarray) -> list[list[tuple[int, int]]]:
    """The groups of True cells connected by an edge or a corner, in reading order."""
    seen = np.zeros_like(cells, dtype=bool)
    groups = []
    rows, cols = cells.shape
    for r0, c0 in zip(*np.nonzero(cells), strict=True):
        if seen[r0, c0]:
            continue
        seen[r0, c0] = True
        group, todo = [], [(int(r0), int(c0))]
        while todo:
            r, c = todo.pop()
            group.append((r, c))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    nr, nc = r + dr, c + dc
                    if 0 <= nr < rows and 0 <= nc < cols and cells[nr, nc] and not seen[nr, nc]:
                        seen[nr, nc] = True
                        todo.append((nr, nc))
        groups.append(group)
    return groups


def to_rect(box: Sequence[float] | np.ndarray) -> Rect:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (int(np.floor(x1)), int(np.floor(y1)), int(np.ceil(x2)), int(np.ceil(y2)))


def grow(rect: Rect, by: int, width: int, height: int) -> Rect:
    x1, y1, x2, y2 = rect
    return (max(0, x1 - by), max(0, y1 - by), min(width, x2 + by), min(height, y2 + by))


def overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def union(a: Rect, b: Rect) -> Rect:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def merge_overlapping(rects: Sequence[Rect]) -> list[Rect]:
    """Overlapping rectangles replaced by their bounding rectangle, until none overlap."""
    out = list(rects)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                if overlaps(out[i], out[j]):
                    out[i] = union(out[i], out.pop(j))
                    merged = True
                    break
            if merged:
                break
    return sorted(out)


def covered(rects: Sequence[Rect]) -> int:
    """Pixels in the rectangles (they do not overlap)."""
    return sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in rects)


def outside(boxes: np.ndarray, rects: Sequence[Rect]) -> np.ndarray:
    """(N,) bool: which boxes overlap none of the rectangles."""
    keep = np.ones(len(boxes), bool)
    for i, box in enumerate(boxes):
        keep[i] = not any(overlaps(to_rect(box), rect) for rect in rects)
    return keep
