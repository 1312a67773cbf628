"""Motion gating: a frame that barely differs from the last analysed one is not analysed again.

The difference is taken on a small grey copy, cell by cell, so a person stepping into one
corner of a large quiet scene still counts as motion (a whole-frame mean would drown it).
"""

from __future__ import annotations

import numpy as np

# The grey copy is the frame averaged over blocks of this many pixels a side.
BLOCK_PX = 8
# Cells of this many blocks a side are compared: about 64x64 source pixels, a small face.
CELL_BLOCKS = 8
# A cell whose mean grey level moved by more than this (0-255) is motion. Re-encoding a
# still scene moves cells by well under 1 level; a face stepping in moves its cell by tens.
CELL_CHANGE = 4.0
# However still the scene, detect in full at least every this many sampled frames.
MAX_CARRIED = 10

FRAME_ANALYSED = "analysed"
FRAME_CARRIED = "carried"  # faces carried over from the last analysed frame
# (A third mode, "tracked" - faces followed without a full detection - is not built yet.)


def grey_blocks(image: np.ndarray) -> np.ndarray:
    """(H // BLOCK_PX, W // BLOCK_PX) float32 mean grey levels of an (H, W, 3) RGB frame."""
    h = image.shape[0] // BLOCK_PX * BLOCK_PX
    w = image.shape[1] // BLOCK_PX * BLOCK_PX
    grey = image[:h, :w].mean(axis=2, dtype=np.float32)
    return grey.reshape(h // BLOCK_PX, BLOCK_PX, w // BLOCK_PX, BLOCK_PX).mean(axis=(1, 3))


def largest_cell_change(before: np.ndarray, after: np.ndarray) -> float:
    """The largest mean absolute change over cells of CELL_BLOCKS x CELL_BLOCKS blocks."""
    diff = np.abs(after - before)
    rows = -(-diff.shape[0] // CELL_BLOCKS) * CELL_BLOCKS
    cols = -(-diff.shape[1] // CELL_BLOCKS) * CELL_BLOCKS
    padded = np.zeros((rows, cols), np.float32)
    padded[: diff.shape[0], : diff.shape[1]] = diff
    cells = padded.reshape(rows // CELL_BLOCKS, CELL_BLOCKS, cols // CELL_BLOCKS, CELL_BLOCKS)
    return float(cells.mean(axis=(1, 3)).max()) if diff.size else 0.0


class MotionGate:
    """Says which sampled frames need analysing; the others carry the last analysis over.

    Args:
        cell_change: grey levels a cell must move by to count as motion.
        max_carried: frames carried in a row before a full analysis is forced anyway.
    """

    def __init__(self, cell_change: float = CELL_CHANGE, max_carried: int = MAX_CARRIED) -> None:
        self.cell_change = cell_change
        self.max_carried = max_carried
        self._reference: np.ndarray | None = None
        self._carried = 0
        self.analysed = 0
        self.carried = 0

    def needs_analysis(self, image: np.ndarray) -> bool:
        """Whether ``image`` must be analysed (then it becomes the new reference)."""
        blocks = grey_blocks(image)
        still = (
            self._reference is not None
            and self._reference.shape == blocks.shape
            and self._carried < self.max_carried
            and largest_cell_change(self._reference, blocks) <= self.cell_change
        )
        if still:
            self._carried += 1
            self.carried += 1
            return False
        self._reference = blocks
        self._carried = 0
        self.analysed += 1
        return True
