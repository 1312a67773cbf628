"""MTCNN's three-stage cascade on one frame, after facenet-pytorch's ``detect_face`` (MIT licence).

The networks, image pyramid, thresholds, non-maximum suppression and box arithmetic are
facenet-pytorch 2.5.3's own (its helper functions are called, not copied). What differs is
how images are resampled. facenet-pytorch resizes the whole frame once per pyramid level and
then every candidate box one at a time, each with ``interpolate(mode="area")``; on a 720p
frame that took about a third of the detector's time. Here every one of those resizes is read
off one integral image of the frame: the same window averages (PyTorch's adaptive average
pooling windows), from exact integer sums, with all boxes of a stage in one gather. Networks
get channels-last tensors, which PyTorch's CPU convolutions and pooling run 2-2.6x faster.
tests/pipeline/test_detector_speedups.py checks the boxes against facenet-pytorch's MTCNN.

A :class:`CascadeFrame` also keeps what depends only on the frame and a network (pyramid
levels, each first-stage network's answers), so that several detectors looking at the same
frame (``MergedDetector``) compute them once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

#: MTCNN's pyramid step (facenet-pytorch's default ``factor``).
PYRAMID_FACTOR = 0.709

StageAnswer = tuple[torch.Tensor, ...]


class AreaSampler:
    """Area-resampled rectangles of one 8-bit image, all read off its integral image.

    Output pixel ``i`` of a rectangle ``[start, end)`` resized to ``n`` averages input pixels
    ``start + floor(i * L / n)`` to ``start + ceil((i + 1) * L / n)`` (exclusive), ``L = end -
    start``, in both directions: the windows of ``interpolate(mode="area")``, so enlarging and
    shrinking both match it. Sums are exact integers.
    """

    def __init__(self, image: torch.Tensor) -> None:
        if image.dtype != torch.uint8:
            raise TypeError(f"AreaSampler reads 8-bit images, not {image.dtype}")
        channels, height, width = image.shape
        # int32 holds the sums of up to 8.4 M pixels of 255 and is the faster to add up.
        dtype = torch.int32 if height * width * 255 < 2**31 else torch.int64
        table = torch.zeros((channels, height + 1, width + 1), dtype=dtype)
        table[:, 1:, 1:] = image.cumsum(1, dtype=dtype).cumsum(2, dtype=dtype)
        self._table = table
        self._stride = width + 1
        self.channels, self.height, self.width = channels, height, width

    def resize_whole(self, out_height: int, out_width: int) -> torch.Tensor:
        """(1, C, out_height, out_width) float32: the whole image resized."""
        row_lo, row_hi = (w[0] for w in _windows(_one(0), _one(self.height), out_height))
        col_lo, col_hi = (w[0] for w in _windows(_one(0), _one(self.width), out_width))
        # Each output row's window of rows summed, per column prefix: (C, out_height, W + 1).
        # (Indexing with tensors is faster here than index_select on int32.)
        rows = self._table[:, row_hi] - self._table[:, row_lo]
        total = rows[:, :, col_hi] - rows[:, :, col_lo]
        count = (row_hi - row_lo)[:, None] * (col_hi - col_lo)[None, :]
        # float32 holds window sums exactly up to 2**24 (windows of 65,000 pixels), far more
        # than a pyramid level of a 1280 px frame averages; beyond that it rounds by 1e-7.
        return (total.to(torch.float32) / count.to(torch.float32)).unsqueeze(0)

    def resize(self, top: torch.Tensor, bottom: torch.Tensor, left: torch.Tensor,
               right: torch.Tensor, out_height: int, out_width: int) -> torch.Tensor:
        """(N, C, out_height, out_width) float32: the rectangles rows [top, bottom) x columns
        [left, right), each resized; coordinates are int64 tensors of shape (N,)."""
        row_lo, row_hi = _windows(top, bottom, out_height)
        col_lo, col_hi = _windows(left, right, out_width)
        flat = self._table.reshape(self.channels, -1)

        def corner(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
            index = (rows[:, :, None] * self._stride + cols[:, None, :]).reshape(-1)
            return flat[:, index]

        total = (corner(row_hi, col_hi) - corner(row_lo, col_hi)
                 - corner(row_hi, col_lo) + corner(row_lo, col_lo))
        count = ((row_hi - row_lo)[:, :, None] * (col_hi - col_lo)[:, None, :]).reshape(-1)
        mean = total.to(torch.float32) / count.to(torch.float32)
        return mean.reshape(self.channels, -1, out_height, out_width).permute(1, 0, 2, 3)


def _one(value: int) -> torch.Tensor:
    return torch.tensor([value], dtype=torch.int64)


def _windows(start: torch.Tensor, end: torch.Tensor,
             size: int) -> tuple[torch.Tensor, torch.Tensor]:
    length = (end - start)[:, None]
    steps = torch.arange(size, dtype=torch.int64)[None, :]
    low = start[:, None] + steps * length // size
    high = start[:, None] + ((steps + 1) * length + size - 1) // size
    return low, high


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """MTCNN's input scaling, as facenet-pytorch applies it."""
    return (pixels - 127.5) * 0.0078125


def union_answer(first: StageAnswer, second: StageAnswer) -> StageAnswer:
    """Two networks of one stage read as one: per cell or box, the answer of the surer one."""
    take_second = second[-1][:, 1:2] > first[-1][:, 1:2]
    return tuple(torch.where(take_second, b, a) for a, b in zip(first, second, strict=True))


class UnionNet(torch.nn.Module):
    """Two networks of one MTCNN stage read as one: each answer comes from the surer of the two.

    MTCNN's stock PNet proposes unmasked faces well and masked ones poorly; a PNet fine-tuned
    on masked faces does the opposite (docs/model-card.md). ``detect_face`` thresholds each
    stage's face probability (the last output, per PNet cell or per RNet/ONet box) and uses
    that cell's or box's regression (and ONet's landmarks), so answering with the higher
    probability and the same network's other outputs passes everything either network
    passes, at the cost of running both.
    """

    def __init__(self, first: torch.nn.Module, second: torch.nn.Module) -> None:
        super().__init__()
        self.first = first
        self.second = second

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return union_answer(self.first(x), self.second(x))


class CascadeFrame:
    """One RGB frame, with what the cascade computes from it that no threshold changes."""

    def __init__(self, frame: np.ndarray) -> None:
        image = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1), dtype=np.uint8))
        self.sampler = AreaSampler(image)
        self.height, self.width = frame.shape[:2]
        self._levels: dict[float, torch.Tensor] = {}
        self._answers: dict[tuple[int, float], StageAnswer] = {}

    def level(self, scale: float) -> torch.Tensor:
        """The frame resized by ``scale`` as facenet-pytorch sizes pyramid levels, normalised."""
        if scale not in self._levels:
            size = (int(self.height * scale + 1), int(self.width * scale + 1))
            pixels = self.sampler.resize_whole(*size)
            self._levels[scale] = _channels_last(normalize(pixels))
        return self._levels[scale]

    def first_stage(self, net: torch.nn.Module, scale: float) -> StageAnswer:
        """A first-stage network's answer on one pyramid level, computed once per network."""
        if isinstance(net, UnionNet):
            return union_answer(self.first_stage(net.first, scale),
                                self.first_stage(net.second, scale))
        key = (id(net), scale)
        if key not in self._answers:
            self._answers[key] = net(self.level(scale))
        return self._answers[key]

    def crops(self, boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised size x size crops of the boxes facenet-pytorch would crop (its ``pad``
        clips them to the frame), and which boxes those are (a box wholly outside has none)."""
        from facenet_pytorch.models.utils.detect_face import pad

        y, ey, x, ex = (torch.from_numpy(v.astype(np.int64))
                        for v in pad(boxes, self.width, self.height))
        valid = (ey > y - 1) & (ex > x - 1)
        pixels = self.sampler.resize(y[valid] - 1, ey[valid], x[valid] - 1, ex[valid], size, size)
        return _channels_last(normalize(pixels)), valid



def _channels_last(batch: torch.Tensor) -> torch.Tensor:
    """The layout PyTorch's CPU convolutions and max-pooling run fastest on."""
    return batch.contiguous(memory_format=torch.channels_last)


def pyramid_scales(height: int, width: int, min_face_size: int,
                   factor: float = PYRAMID_FACTOR) -> list[float]:
    """facenet-pytorch's pyramid: from 12 / min_face_size down while the short side >= 12 px."""
    m = 12.0 / min_face_size
    minl = min(height, width) * m
    scales = []
    scale = m
    while minl >= 12:
        scales.append(scale)
        scale = scale * factor
        minl = minl * factor
    return scales


def detect_faces(frame: CascadeFrame, pnet: Any, rnet: Any, onet: Any, min_face_size: int,
                 thresholds: tuple[float, float, float] | list[float],
                 factor: float = PYRAMID_FACTOR) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N, 5) x1, y1, x2, y2, probability; landmarks (N, 5, 2)) as float32 arrays."""
    from facenet_pytorch.models.utils.detect_face import generateBoundingBox, rerec
    from torchvision.ops.boxes import batched_nms

    empty = (np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32))
    # First stage: PNet over the pyramid, NMS within each level, then across levels.
    boxes_parts, picks = [], []
    offset = 0
    for scale in pyramid_scales(frame.height, frame.width, min_face_size, factor):
        reg, probs = frame.first_stage(pnet, scale)
        found, inds = generateBoundingBox(reg, probs[:, 1], scale, thresholds[0])
        boxes_parts.append(found)
        picks.append(batched_nms(found[:, :4], found[:, 4], inds, 0.5) + offset)
        offset += found.shape[0]
    if not boxes_parts:
        return empty
    boxes = torch.cat(boxes_parts, dim=0)[torch.cat(picks, dim=0)]
    inds = torch.zeros(len(boxes), dtype=torch.int64)
    boxes = boxes[batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)]
    if len(boxes) == 0:
        return empty
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    boxes = torch.stack([boxes[:, 0] + boxes[:, 5] * width, boxes[:, 1] + boxes[:, 6] * height,
                         boxes[:, 2] + boxes[:, 7] * width, boxes[:, 3] + boxes[:, 8] * height,
                         boxes[:, 4]]).permute(1, 0)
    boxes = rerec(boxes)
    return refine(frame, boxes, rnet, onet, thresholds)


#: Following a known face (``follow_faces``): candidate squares around its last box, shifted by
#: these shares of its side each way and sized by these factors; RNet and ONet's box regression
#: then move each candidate onto the face.
FOLLOW_SHIFTS = (-0.3, 0.0, 0.3)
FOLLOW_SCALES = (0.8, 1.0, 1.25)


def follow_candidates(boxes: np.ndarray, shifts: tuple[float, ...] = FOLLOW_SHIFTS,
                      scales: tuple[float, ...] = FOLLOW_SCALES) -> torch.Tensor:
    """(N * len(shifts)**2 * len(scales), 5) squares around each (x1, y1, x2, y2) box: the
    boxes RNet reads in place of PNet's proposals (probability column 0)."""
    out = []
    for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4)[:, :4]:
        side = max(x2 - x1, y2 - y1)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        for scale in scales:
            half = side * scale / 2
            for dy in shifts:
                for dx in shifts:
                    x, y = cx + dx * side, cy + dy * side
                    out.append((x - half, y - half, x + half, y + half, 0.0))
    return torch.tensor(out, dtype=torch.float32).reshape(-1, 5)


def follow_faces(frame: CascadeFrame, boxes: np.ndarray, rnet: Any, onet: Any,
                 thresholds: tuple[float, float, float] | list[float],
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The faces near known boxes (N, 4) of ``frame``: MTCNN's second and third stages on
    ``follow_candidates`` around them instead of PNet's pyramid; as ``detect_faces``."""
    return refine(frame, follow_candidates(boxes), rnet, onet, thresholds)


def _stage(frame: CascadeFrame, boxes: torch.Tensor, net: Any, size: int, threshold: float,
           ) -> tuple[torch.Tensor, list[torch.Tensor]] | None:
    """One refining stage: ``net`` on ``size`` x ``size`` crops of ``boxes`` (M, 5). The boxes
    it passes, with its face score in column 4, and its other outputs (box regression, and
    landmarks for ONet) for them; None when no crop could be taken."""
    from facenet_pytorch.models.utils.detect_face import fixed_batch_process

    crops, valid = frame.crops(boxes, size)
    boxes = boxes[valid]
    if len(boxes) == 0:
        return None
    *outputs, probs = fixed_batch_process(crops, net)
    score = probs[:, 1]
    passed = score > threshold
    kept = torch.cat((boxes[passed, :4], score[passed].unsqueeze(1)), dim=1)
    return kept, [output[passed] for output in outputs]


def refine(frame: CascadeFrame, boxes: torch.Tensor, rnet: Any, onet: Any,
           thresholds: tuple[float, float, float] | list[float],
           ) -> tuple[np.ndarray, np.ndarray]:
    """MTCNN's second (RNet) and third (ONet) stages on square candidate boxes (M, 5)."""
    from facenet_pytorch.models.utils.detect_face import batched_nms_numpy, bbreg, rerec
    from torchvision.ops.boxes import batched_nms

    empty = (np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32))
    if len(boxes) == 0:
        return empty

    # Second stage: RNet on 24 x 24 crops.
    stage = _stage(frame, boxes, rnet, 24, thresholds[1])
    if stage is None:
        return empty
    boxes, (reg,) = stage
    pick = batched_nms(boxes[:, :4], boxes[:, 4], torch.zeros(len(boxes), dtype=torch.int64), 0.7)
    boxes = rerec(bbreg(boxes[pick], reg[pick]))
    if len(boxes) == 0:
        return empty

    # Third stage: ONet on 48 x 48 crops, with landmarks; NMS by the smaller box's area.
    stage = _stage(frame, boxes, onet, 48, thresholds[2])
    if stage is None:
        return empty
    boxes, (reg, points) = stage
    box_w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
    box_h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    points = torch.stack((box_w * points[:, :5] + boxes[:, 0:1] - 1,
                          box_h * points[:, 5:10] + boxes[:, 1:2] - 1), dim=2)
    boxes = bbreg(boxes, reg)
    pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4],
                             torch.zeros(len(boxes), dtype=torch.int64), 0.7, "Min")
    return (boxes[pick].numpy().astype(np.float32, copy=False),
            points[pick].numpy().astype(np.float32, copy=False))
