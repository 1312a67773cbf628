"""Motion gating: a frame that barely differs from the last analysed one is not analysed again.

The difference is taken on a small grey copy, cell by cell, so a person stepping into one
corner of a large quiet scene still counts as motion (a whole-frame mean would drown it).
The map of cells that moved also says where to detect again (worker/pipeline/regions.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The grey copy is the frame averaged over blocks of this many pixels a side.
BLOCK_PX = 8
# Cells of this many blocks a side are compared: about 64x64 source pixels, a small face.
CELL_BLOCKS = 8
# A cell whose mean grey level moved by more than this (0-255) is motion. Re-encoding a
# still scene moves cells by well under 1 level; a face stepping in moves its cell by tens.
CELL_CHANGE = 4.0
# However still the scene, detect in full at least every this many sampled frames: on
# every sample whose number (from the footage start) is a multiple of it. The grid is
# absolute so that a job split into segments gates exactly as one run does: a segment
# starts on a grid sample (``grid_start``), where both runs analyse and agree from then on.
# 25 (5 s at 5 samples/s), not 10: with sparse detection the forced full detections were
# the largest share of the detector's work left on a fixed camera's clip (make bench), and
# the changed regions are searched between them anyway. A segment's warm-up starts on the
# grid, so it is up to this many samples longer.
MAX_CARRIED = 25

FRAME_ANALYSED = "analysed"
FRAME_CARRIED = "carried"  # faces carried over from the last analysed frame
# detected only in regions (where the scene changed), the other faces carried over:
# worker/pipeline/regions.py
FRAME_TRACKED = "tracked"


# Only every STRIDE-th pixel of every STRIDE-th row is read: the grey copy is a summary,
# and reading all of a 720p frame cost 20-50 ms a frame (measured by make bench).
STRIDE = 4


def grey_blocks(image: np.ndarray) -> np.ndarray:
    """(H // BLOCK_PX, W // BLOCK_PX) float32 mean grey levels of an (H, W, 3) RGB frame."""
    side = BLOCK_PX // STRIDE
    h = image.shape[0] // BLOCK_PX * BLOCK_PX
    w = image.shape[1] // BLOCK_PX * BLOCK_PX
    grey = image[:h:STRIDE, :w:STRIDE].mean(axis=2, dtype=np.float32)
    return grey.reshape(h // BLOCK_PX, side, w // BLOCK_PX, side).mean(axis=(1, 3))


def cell_changes(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(rows, cols) mean absolute change of each cell of CELL_BLOCKS x CELL_BLOCKS blocks
    (cell ``(r, c)`` covers frame pixels from ``(r, c) * CELL_PX``, the last ones partly)."""
    diff = np.abs(after - before)
    rows = -(-diff.shape[0] // CELL_BLOCKS) * CELL_BLOCKS
    cols = -(-diff.shape[1] // CELL_BLOCKS) * CELL_BLOCKS
    padded = np.zeros((rows, cols), np.float32)
    padded[: diff.shape[0], : diff.shape[1]] = diff
    cells = padded.reshape(rows // CELL_BLOCKS, CELL_BLOCKS, cols // CELL_BLOCKS, CELL_BLOCKS)
    return cells.mean(axis=(1, 3))


#: A cell's side in frame pixels.
CELL_PX = BLOCK_PX * CELL_BLOCKS


def sample_number(timestamp_s: float, sample_period_s: float) -> int:
    """The number of the sample at ``timestamp_s``, counted from the footage start: the one
    numbering every absolute grid (the gate's, settling's, region searches') and segments
    share, so that a segment plans as one run does."""
    return round(timestamp_s / sample_period_s)


def grid_start(sample_number: int, max_carried: int = MAX_CARRIED) -> int:
    """The last sample at or before ``sample_number`` on which analysis is forced."""
    return max(0, sample_number) // max_carried * max_carried


@dataclass(eq=False)
class MotionGate:
    """Says which sampled frames need analysing; the others carry the last analysis over.

    Args:
        sample_period_s: seconds between samples, to number them from their timestamps
            (None: count frames carried in a row instead of using the absolute grid).
        cell_change: grey levels a cell must move by to count as motion.
        max_carried: analysis is forced on every sample numbered a multiple of this.
    """

    sample_period_s: float | None = None
    cell_change: float = CELL_CHANGE
    max_carried: int = MAX_CARRIED
    _reference: np.ndarray | None = field(default=None, init=False, repr=False)
    _carried: int = field(default=0, init=False, repr=False)
    #: samples analysed and carried over so far
    analysed: int = field(default=0, init=False)
    carried: int = field(default=0, init=False)

    def needs_analysis(self, image: np.ndarray, timestamp_s: float | None = None) -> bool:
        """Whether ``image`` must be analysed (then it becomes the new reference)."""
        look = self.look(image, timestamp_s)
        if look.still:
            self.carry()
            return False
        self.accept(look)
        return True

    def look(self, image: np.ndarray, timestamp_s: float | None = None) -> GateLook:
        """Compare ``image`` with the reference; nothing is counted nor kept until the
        caller says what it did with the frame (``carry`` or ``accept``)."""
        blocks = grey_blocks(image)
        if self.sample_period_s and timestamp_s is not None:
            forced = sample_number(timestamp_s, self.sample_period_s) % self.max_carried == 0
        else:
            forced = self._carried >= self.max_carried
        changed = None
        if self._reference is not None and self._reference.shape == blocks.shape:
            changed = cell_changes(self._reference, blocks) > self.cell_change
        return GateLook(blocks, forced, changed)

    def carry(self) -> None:
        """The frame looked at was carried over, not analysed."""
        self._carried += 1
        self.carried += 1

    def accept(self, look: GateLook, cells: np.ndarray | None = None) -> None:
        """The frame looked at was analysed: it becomes the reference, wholly, or only in
        ``cells`` (a (rows, cols) boolean map) when only those were detected again, so that
        a slow drift elsewhere still adds up against the last frame detected there."""
        if cells is None or self._reference is None:
            self._reference = look.blocks
        else:
            blocks = np.repeat(np.repeat(cells, CELL_BLOCKS, 0), CELL_BLOCKS, 1)
            blocks = blocks[: look.blocks.shape[0], : look.blocks.shape[1]]
            self._reference = np.where(blocks, look.blocks, self._reference)
        self._carried = 0
        self.analysed += 1


@dataclass(frozen=True)
class GateLook:
    """A sampled frame against the gate's reference."""

    blocks: np.ndarray  # the frame's grey copy
    forced: bool  # a sample on the absolute grid: detect in full
    changed: np.ndarray | None  # (rows, cols) cells that moved; None: nothing to compare with

    @property
    def still(self) -> bool:
        """Nothing moved and no analysis is forced: the frame can be carried over."""
        return not self.forced and self.changed is not None and not self.changed.any()
