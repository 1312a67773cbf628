"""Fine-tune facenet-pytorch MTCNN's PNet, RNet and ONet on the kaggle TRAIN scenes (masked faces).

PNet (the proposal stage, 12 x 12 windows of an image pyramid) is trained first; RNet and
ONet then take their hard negatives from what the new PNet proposes.

Samples follow the MTCNN paper: square boxes jittered around ground-truth faces are positives
(IoU > 0.65), part faces (0.4-0.65, box regression only) or, with random squares and MTCNN's
own false positives, negatives (IoU < 0.3). Crops are cut exactly as facenet-pytorch's
``detect_face`` cuts stage-2/3 inputs: the box truncated to ints, clipped to the image (not
padded), ``img[:, y-1:ey, x-1:ex]`` of the RGB (3, H, W) frame, area-resized to 24/48 and
normalised with ``(x - 127.5) * 0.0078125``; RNet/ONet transpose internally.
Regression targets are those ``bbreg`` applies: ``(gt - box) / (side + 1)``.
Only scenes listed in ``kaggle_scenes_train.txt`` are used.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.metrics import box_iou

logger = logging.getLogger(__name__)

POS_IOU = 0.65
PART_IOU = 0.4
NEG_IOU = 0.3
LABEL_NEG, LABEL_POS, LABEL_PART = 0, 1, 2
SCENES = "datasets/kaggle-scenes-dev"
STAGES = ("pnet", "rnet", "onet")


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) IoU of one (4,) xyxy box with (N, 4) boxes (ml.metrics.box_iou)."""
    return box_iou(np.asarray(box).reshape(1, 4), boxes)[0]


def square(boxes: np.ndarray) -> np.ndarray:
    """facenet-pytorch's ``rerec``: the square of side max(w, h) on the same centre."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] += w * 0.5 - side * 0.5
    boxes[:, 1] += h * 0.5 - side * 0.5
    boxes[:, 2] = boxes[:, 0] + side
    boxes[:, 3] = boxes[:, 1] + side
    return boxes


def regression_target(box: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Offsets that facenet-pytorch's ``bbreg`` turns ``box`` into ``gt`` with."""
    w = box[2] - box[0] + 1
    h = box[3] - box[1] + 1
    return np.array(
        [(gt[0] - box[0]) / w, (gt[1] - box[1]) / h, (gt[2] - box[2]) / w, (gt[3] - box[3]) / h],
        np.float32,
    )


def categorise(box: np.ndarray, gt_boxes: np.ndarray) -> tuple[int, int]:
    """(label, index of the best GT) for a square box; label -1 when between 0.3 and 0.4.

    Positives and parts are judged against the squared GT (the shape MTCNN's boxes have);
    negatives against the raw GT boxes and their squares (so no face part is a negative).
    """
    if len(gt_boxes) == 0:
        return LABEL_NEG, -1
    sq = iou(box, square(gt_boxes))
    raw = iou(box, gt_boxes)
    best = int(np.argmax(sq))
    if sq[best] > POS_IOU:
        return LABEL_POS, best
    if sq[best] >= PART_IOU:
        return LABEL_PART, best
    if max(sq.max(), raw.max()) < NEG_IOU:
        return LABEL_NEG, -1
    return -1, best


def jitter_boxes(
    gt: np.ndarray,
    count: int,
    rng: np.random.Generator,
    shift: float = 0.25,
    scale: tuple[float, float] = (0.8, 1.25),
) -> np.ndarray:
    """``count`` squares around one GT face: centre shifted by up to ``shift`` of its side."""
    sq = square(gt)[0]
    side = sq[2] - sq[0]
    cx, cy = (sq[0] + sq[2]) / 2, (sq[1] + sq[3]) / 2
    sides = side * rng.uniform(*scale, count)
    cx = cx + side * rng.uniform(-shift, shift, count)
    cy = cy + side * rng.uniform(-shift, shift, count)
    return np.stack([cx - sides / 2, cy - sides / 2, cx + sides / 2, cy + sides / 2], 1)


def crop_like_mtcnn(img: Any, boxes: np.ndarray, size: int) -> tuple[Any, np.ndarray]:
    """uint8-range float crops (N, 3, size, size) as detect_face cuts them; and which were valid."""
    import torch
    from torch.nn.functional import interpolate

    _, h, w = img.shape
    b = np.trunc(np.asarray(boxes, np.float64).reshape(-1, 4)).astype(np.int64)
    x = np.maximum(b[:, 0], 1)
    y = np.maximum(b[:, 1], 1)
    ex = np.minimum(b[:, 2], w)
    ey = np.minimum(b[:, 3], h)
    crops, valid = [], np.zeros(len(b), bool)
    for k in range(len(b)):
        if ey[k] > y[k] - 1 and ex[k] > x[k] - 1:
            part = img[:, y[k] - 1 : ey[k], x[k] - 1 : ex[k]].unsqueeze(0)
            crops.append(interpolate(part, size=(size, size), mode="area"))
            valid[k] = True
    if not crops:
        return torch.zeros(0, 3, size, size), valid
    return torch.cat(crops), valid


def normalise(crops: Any) -> Any:
    return (crops.float() - 127.5) * 0.0078125


LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


def greyscale_some(crops: Any, fraction: float, generator: Any) -> Any:
    """Crops (N, 3, H, W) with about ``fraction`` of them (drawn from ``generator``) in grey.

    A grey crop has its luma in all three channels, as a monochrome camera's frame decodes.
    """
    import torch

    if fraction <= 0:
        return crops
    chosen = torch.rand(crops.shape[0], generator=generator) < fraction
    if not bool(chosen.any()):
        return crops
    out = crops.float().clone()
    weights = torch.tensor(LUMA).view(1, 3, 1, 1)
    out[chosen] = (out[chosen] * weights).sum(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    return out


@dataclass(frozen=True)
class DetectorTrainConfig:
    upscale: float = 1.5  # scenes are enlarged like the recommended setting before cropping
    min_face: float = 8.0  # GT faces smaller than this (after upscale) are skipped
    pos_per_face: int = 12
    part_per_face: int = 4
    neg_per_scene: int = 40
    hard_neg_per_scene: int = 40
    hard_thresholds: tuple[float, float, float] = (0.6, 0.05, 0.05)
    min_face_size: int = 20
    epochs: int = 4
    batch_size: int = 128
    lr: float = 1e-4
    box_weight: float = 0.5
    seed: int = 0
    #: Drop negatives that the wheel's own ONet calls a face at this probability or more: the
    #: kaggle scenes do not box every face, and an unboxed face taught as "not a face" costs
    #: recall on real ones (unmasked most, as they are the rarer). None keeps every negative.
    neg_veto: float | None = None
    #: Positive and part samples per unmasked face, as a multiple of those per masked face
    #: (unmasked faces are about five times rarer in the kaggle scenes). 1: the same number.
    unmasked_factor: int = 1
    #: Share of each training batch turned greyscale (luma in all three channels), so that
    #: RNet/ONet also learn faces from monochrome (night, infrared) cameras. 0: colour only.
    grey_fraction: float = 0.0


@dataclass
class SampleSet:
    crops24: Any  # uint8 (N, 3, 24, 24)
    crops48: Any  # uint8 (N, 3, 48, 48)
    labels: np.ndarray  # (N,) LABEL_*
    targets: np.ndarray  # (N, 4) float32, zeros for negatives
    masked: np.ndarray  # (N,) bool: the GT face is with_mask/incorrect_mask
    vetoed: int = 0  # negatives dropped by DetectorTrainConfig.neg_veto


def load_rgb(path: Path, upscale: float) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as opened:
        rgb = opened.convert("RGB")
    if upscale != 1.0:  # as MTCNNDetector enlarges frames
        size = (max(1, round(rgb.width * upscale)), max(1, round(rgb.height * upscale)))
        rgb = rgb.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(rgb)


class _Collector:
    """Boxes of one scene with their label, regression target and masked flag.

    ``target`` is the stage's regression convention (``regression_target`` for RNet/ONet,
    ``pnet_target`` for PNet's windows).
    """

    def __init__(
        self,
        gt: np.ndarray,
        is_masked: np.ndarray,
        target: Callable[[np.ndarray, np.ndarray], np.ndarray] = regression_target,
    ) -> None:
        self.gt, self.is_masked, self.target = gt, is_masked, target
        self.boxes: list[np.ndarray] = []
        self.kinds: list[int] = []
        self.targets: list[np.ndarray] = []
        self.masked: list[bool] = []

    def add(self, box: np.ndarray) -> int:
        label, idx = categorise(box, self.gt)
        if label < 0:
            return label
        face = label != LABEL_NEG
        self.boxes.append(box)
        self.kinds.append(label)
        self.targets.append(self.target(box, self.gt[idx]) if face else np.zeros(4, np.float32))
        self.masked.append(bool(self.is_masked[idx]) if face else False)
        return label


def scene_boxes(
    gt: np.ndarray,
    is_masked: np.ndarray,
    hw: tuple[int, int],
    proposals: np.ndarray,
    config: DetectorTrainConfig,
    rng: np.random.Generator,
) -> _Collector:
    """Positives/parts jittered around each GT face, random and hard (proposal) negatives."""
    h, w = hw
    out = _Collector(gt, is_masked)
    for face, face_masked in zip(gt, is_masked, strict=True):
        if min(face[2] - face[0], face[3] - face[1]) < config.min_face:
            continue
        times = 1 if face_masked else config.unmasked_factor
        quota = {LABEL_POS: config.pos_per_face * times, LABEL_PART: config.part_per_face * times}
        for box in jitter_boxes(
            face[None], 12 * quota[LABEL_POS], rng, shift=0.3, scale=(0.75, 1.3)
        ):
            label, _ = categorise(box, gt)
            if quota.get(label, 0) > 0:
                quota[label] -= 1
                out.add(box)
            if not any(quota.values()):
                break
    neg = 0
    for _ in range(config.neg_per_scene * 5):
        if neg >= config.neg_per_scene:
            break
        side = rng.uniform(12, max(13, min(h, w) / 2))
        x0, y0 = rng.uniform(0, max(1, w - side)), rng.uniform(0, max(1, h - side))
        box = np.array([x0, y0, x0 + side, y0 + side])
        if categorise(box, gt)[0] == LABEL_NEG:
            neg += 1
            out.add(box)
    hard = [sq for sq in square(proposals) if categorise(sq, gt)[0] == LABEL_NEG]
    for box in hard[: config.hard_neg_per_scene]:
        out.add(box)
    return out


def load_scene(scene: Any, upscale: float) -> tuple[np.ndarray, Any, np.ndarray, np.ndarray]:
    """(RGB frame, float (3, H, W) tensor, GT boxes, masked flags) of a scene, enlarged."""
    import torch

    from maskwatch.core.labels import Label

    frame = load_rgb(scene.image_path, upscale)
    img = torch.as_tensor(frame.copy()).permute(2, 0, 1).float()
    gt = scene.xyxy.astype(np.float64).reshape(-1, 4) * upscale
    is_masked = np.array([lab != Label.WITHOUT_MASK for lab in scene.labels], bool)
    return frame, img, gt, is_masked


def build_samples(
    scenes: list[Any],
    mtcnn: Any,
    config: DetectorTrainConfig,
    on_scene: Callable[[], None] | None = None,
) -> SampleSet:
    import torch

    rng = np.random.default_rng(config.seed)
    c24, c48, labels, targets, masked = [], [], [], [], []
    for scene in scenes:
        frame, img, gt, is_masked = load_scene(scene, config.upscale)
        proposals = np.zeros((0, 4))
        if config.hard_neg_per_scene:  # hard negatives: what MTCNN itself finds off the faces
            with torch.inference_mode():
                found, _ = mtcnn.detect(frame)
            if found is not None:
                proposals = np.asarray(found, np.float64).reshape(-1, 4)
        got = scene_boxes(gt, is_masked, frame.shape[:2], proposals, config, rng)
        if got.boxes:
            arr = np.stack(got.boxes)
            k24, valid = crop_like_mtcnn(img, arr, 24)
            k48, _ = crop_like_mtcnn(img, arr, 48)
            c24.append(k24.round().clamp(0, 255).to(torch.uint8))
            c48.append(k48.round().clamp(0, 255).to(torch.uint8))
            labels.append(np.asarray(got.kinds)[valid])
            targets.append(np.stack(got.targets)[valid])
            masked.append(np.asarray(got.masked)[valid])
        if on_scene:
            on_scene()
    samples = SampleSet(
        torch.cat(c24),
        torch.cat(c48),
        np.concatenate(labels),
        np.concatenate(targets).astype(np.float32),
        np.concatenate(masked),
    )
    return samples if config.neg_veto is None else veto_face_like_negatives(samples,
                                                                            config.neg_veto)


def veto_face_like_negatives(samples: SampleSet, threshold: float,
                             teacher: Any | None = None) -> SampleSet:
    """``samples`` less the negatives ``teacher`` (default: the wheel's ONet) calls faces."""
    import torch
    from facenet_pytorch.models.mtcnn import ONet

    teacher = teacher if teacher is not None else ONet(pretrained=True)
    teacher.eval()
    neg = np.flatnonzero(samples.labels == LABEL_NEG)
    face_prob = np.zeros(len(samples.labels), np.float32)
    with torch.inference_mode():
        for start in range(0, len(neg), 512):
            rows = neg[start : start + 512]
            face_prob[rows] = _forward(teacher, normalise(samples.crops48[rows]))[1][:, 1].numpy()
    keep = ~((samples.labels == LABEL_NEG) & (face_prob >= threshold))
    index = torch.as_tensor(np.flatnonzero(keep))
    return SampleSet(samples.crops24[index], samples.crops48[index], samples.labels[keep],
                     samples.targets[keep], samples.masked[keep],
                     vetoed=samples.vetoed + int((~keep).sum()))


def _forward(net: Any, x: Any) -> tuple[Any, Any]:
    out = net(x)
    # regression, softmax probabilities; PNet answers (N, C, 1, 1) on a 12 x 12 window
    return out[0].flatten(1), out[-1].flatten(1)


def finetune(
    net: Any,
    crops: Any,
    samples: SampleSet | PNetSamples,
    config: DetectorTrainConfig | PNetTrainConfig,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Cross-entropy on pos/neg + smooth L1 regression on pos/part; landmark head frozen."""
    import torch
    from torch.nn.functional import nll_loss, smooth_l1_loss

    for name, param in net.named_parameters():
        param.requires_grad = not name.startswith("dense6_3")  # ONet's landmark head
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    optim = torch.optim.Adam(params, lr=config.lr)
    labels = torch.as_tensor(samples.labels)
    targets = torch.as_tensor(samples.targets)
    gen = torch.Generator().manual_seed(config.seed)
    grey = config.grey_fraction if isinstance(config, DetectorTrainConfig) else 0.0
    grey_gen = torch.Generator().manual_seed(config.seed + 1)  # apart: same order as without
    history = []
    for epoch in range(config.epochs):
        order = torch.randperm(len(labels), generator=gen)
        total = {"cls": 0.0, "box": 0.0, "n": 0}
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            x = normalise(greyscale_some(crops[idx], grey, grey_gen))
            lab = labels[idx]
            reg, prob = _forward(net, x)
            cls_mask = lab != LABEL_PART
            box_mask = lab != LABEL_NEG
            loss = torch.zeros(())
            if cls_mask.any():
                cls = nll_loss(prob[cls_mask].clamp_min(1e-7).log(), lab[cls_mask])
                loss = loss + cls
                total["cls"] += float(cls.detach()) * int(cls_mask.sum())
            if box_mask.any():
                box = smooth_l1_loss(reg[box_mask], targets[idx][box_mask], beta=0.05)
                loss = loss + config.box_weight * box
                total["box"] += float(box.detach()) * int(box_mask.sum())
            optim.zero_grad()
            loss.backward()
            optim.step()
            total["n"] += len(idx)
        row = {
            "epoch": epoch + 1,
            "cls_loss": total["cls"] / max(1, total["n"]),
            "box_loss": total["box"] / max(1, total["n"]),
        }
        history.append(row)
        log(f"epoch {epoch + 1}: {row}")
    net.eval()
    for param in net.parameters():
        param.requires_grad = True
    return {"history": history}


def scores(net: Any, crops: Any, batch: int = 512) -> np.ndarray:
    """Face probability of each crop."""
    import torch

    net.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(crops), batch):
            out.append(_forward(net, normalise(crops[start : start + batch]))[1][:, 1])
    return torch.cat(out).numpy() if out else np.zeros(0)


def score_report(
    net: Any, crops: Any, samples: SampleSet | PNetSamples, threshold: float
) -> dict[str, Any]:
    """Share of positives (masked / unmasked) and negatives over a stage threshold."""
    prob = scores(net, crops)
    pos = samples.labels == LABEL_POS
    neg = samples.labels == LABEL_NEG

    def share(mask: np.ndarray) -> float:
        return float((prob[mask] > threshold).mean()) if mask.any() else float("nan")

    return {
        "pos_masked": share(pos & samples.masked),
        "pos_unmasked": share(pos & ~samples.masked),
        "neg": share(neg),
        "threshold": threshold,
    }


# ---------------------------------------------------------------------------------------------
# PNet: the proposal stage. It sees 12 x 12 windows of an image pyramid (stride 2 per level);
# a face it does not fire on never reaches RNet/ONet, whatever they were trained on.

PNET_CELL = 12
PNET_STRIDE = 2
PNET_FACTOR = 0.709  # facenet-pytorch MTCNN's default pyramid factor


@dataclass(frozen=True)
class PNetTrainConfig:
    upscale: float = 1.5
    min_face: float = 14.0  # GT faces below this (after upscale) are under MTCNN's pyramid
    pos_per_face: int = 24
    part_per_face: int = 12
    unmasked_factor: int = 3  # unmasked faces are rarer here: this many times their samples
    neg_per_scene: int = 120
    hard_neg_per_scene: int = 60
    min_face_size: int = 20
    threshold: float = 0.6
    epochs: int = 6
    batch_size: int = 256
    lr: float = 3e-4
    box_weight: float = 0.5
    seed: int = 0


def pnet_box(windows: np.ndarray) -> np.ndarray:
    """The box facenet-pytorch's ``generateBoundingBox`` reports for square pyramid windows.

    A window of side S at (x0, y0) is reported as [x0 + S/12, y0 + S/12, x0 + S, y0 + S]
    (``(stride * bb + 1) / scale`` to ``(stride * bb + 12) / scale``), and its regression
    is applied with width ``q2 - q1`` (no +1), unlike RNet/ONet's ``bbreg``.
    """
    w = np.asarray(windows, np.float64).reshape(-1, 4)
    side = w[:, 2] - w[:, 0]
    return np.stack([w[:, 0] + side / PNET_CELL, w[:, 1] + side / PNET_CELL, w[:, 2], w[:, 3]], 1)


def pnet_target(window: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Offsets that turn a window's reported PNet box into ``gt`` the way detect_face does."""
    q = pnet_box(window)[0]
    w, h = q[2] - q[0], q[3] - q[1]
    return np.array(
        [(gt[0] - q[0]) / w, (gt[1] - q[1]) / h, (gt[2] - q[2]) / w, (gt[3] - q[3]) / h],
        np.float32,
    )


def crop_windows(img: Any, windows: np.ndarray, size: int = PNET_CELL) -> tuple[Any, np.ndarray]:
    """Area-resampled (N, 3, size, size) crops of windows that lie inside the image.

    The pyramid resamples the whole image with ``interpolate(mode="area")`` and PNet reads
    12 x 12 cells of it; resampling each window alone is the same up to where the cell grid
    falls. Windows leaving the image never occur in the pyramid and are dropped (valid False).
    """
    import torch
    from torch.nn.functional import interpolate

    _, h, w = img.shape
    b = np.round(np.asarray(windows, np.float64).reshape(-1, 4)).astype(np.int64)
    valid = (b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= w) & (b[:, 3] <= h)
    valid &= (b[:, 2] - b[:, 0] >= 4) & (b[:, 3] - b[:, 1] >= 4)
    crops = [
        interpolate(img[:, y0:y1, x0:x1].unsqueeze(0), size=(size, size), mode="area")
        for (x0, y0, x1, y1), ok in zip(b, valid, strict=True)
        if ok
    ]
    if not crops:
        return torch.zeros(0, 3, size, size), valid
    return torch.cat(crops), valid


def pnet_windows(
    img: Any, pnet: Any, min_face_size: int, threshold: float, factor: float = PNET_FACTOR
) -> np.ndarray:
    """Square windows (N, 4) in image pixels where PNet fires, after per-scale NMS.

    The first stage of facenet-pytorch's ``detect_face``, without its regression and
    cross-scale merging: what PNet proposes, so that its false alarms can be hard negatives.
    """
    import torch
    from facenet_pytorch.models.utils.detect_face import imresample
    from torchvision.ops import nms

    _, h, w = img.shape
    scale = PNET_CELL / min_face_size
    out = []
    with torch.inference_mode():
        while min(h, w) * scale >= PNET_CELL:
            data = imresample(img.unsqueeze(0), (int(h * scale + 1), int(w * scale + 1)))
            _, prob = pnet(normalise(data))
            face = prob[0, 1]
            ys, xs = torch.nonzero(face >= threshold, as_tuple=True)
            if len(ys):
                x0 = xs.double() * PNET_STRIDE / scale
                y0 = ys.double() * PNET_STRIDE / scale
                side = PNET_CELL / scale
                boxes = torch.stack([x0, y0, x0 + side, y0 + side], 1)
                # NMS on the whole-pixel boxes detect_face reports, so the same windows survive
                cells = torch.stack([xs, ys], 1).float() * PNET_STRIDE
                reported = torch.cat([((cells + 1) / scale).floor(),
                                      ((cells + PNET_CELL) / scale).floor()], 1)
                keep = nms(reported, face[ys, xs].float(), 0.5)
                out.append(boxes[keep].numpy())
            scale *= factor
    return np.concatenate(out) if out else np.zeros((0, 4))


@dataclass
class PNetSamples:
    crops: Any  # uint8 (N, 3, 12, 12)
    labels: np.ndarray
    targets: np.ndarray
    masked: np.ndarray


def pnet_scene_samples(
    img: Any,
    gt: np.ndarray,
    is_masked: np.ndarray,
    proposals: np.ndarray,
    config: PNetTrainConfig,
    rng: np.random.Generator,
) -> PNetSamples:
    """Jittered windows around each GT face, random and hard (PNet's own) negatives."""
    import torch

    _, h, w = img.shape
    out = _Collector(gt, is_masked, pnet_target)
    add = out.add

    for face, face_masked in zip(gt, is_masked, strict=True):
        if min(face[2] - face[0], face[3] - face[1]) < config.min_face:
            continue
        times = 1 if face_masked else config.unmasked_factor
        quota = {LABEL_POS: config.pos_per_face * times, LABEL_PART: config.part_per_face * times}
        for box in jitter_boxes(face[None], 16 * quota[LABEL_POS], rng, 0.3, (0.75, 1.35)):
            label, _ = categorise(box, gt)
            inside = box[0] >= 0 and box[1] >= 0 and box[2] <= w and box[3] <= h
            if inside and quota.get(label, 0) > 0:
                quota[label] -= 1
                add(box)
            if not any(quota.values()):
                break
    neg = 0
    for _ in range(config.neg_per_scene * 5):
        if neg >= config.neg_per_scene:
            break
        side = float(np.exp(rng.uniform(np.log(12), np.log(max(13, min(h, w) / 2)))))
        x0, y0 = rng.uniform(0, max(1, w - side)), rng.uniform(0, max(1, h - side))
        if add(np.array([x0, y0, x0 + side, y0 + side])) == LABEL_NEG:
            neg += 1
    hard = [p for p in proposals if categorise(p, gt)[0] == LABEL_NEG]
    order = rng.permutation(len(hard))[: config.hard_neg_per_scene]
    for k in order:
        add(hard[k])
    if not out.boxes:
        return PNetSamples(torch.zeros(0, 3, 12, 12, dtype=torch.uint8), np.zeros(0, np.int64),
                           np.zeros((0, 4), np.float32), np.zeros(0, bool))
    crops, valid = crop_windows(img, np.stack(out.boxes))
    return PNetSamples(
        crops.round().clamp(0, 255).to(torch.uint8),
        np.asarray(out.kinds, np.int64)[valid],
        np.stack(out.targets)[valid].astype(np.float32),
        np.asarray(out.masked, bool)[valid],
    )


def build_pnet_samples(
    scenes: list[Any],
    pnet: Any,
    config: PNetTrainConfig,
    on_scene: Callable[[], None] | None = None,
) -> PNetSamples:
    import torch

    rng = np.random.default_rng(config.seed)
    parts = []
    for scene in scenes:
        _, img, gt, is_masked = load_scene(scene, config.upscale)
        proposals = pnet_windows(img, pnet, config.min_face_size, config.threshold)
        parts.append(pnet_scene_samples(img, gt, is_masked, proposals, config, rng))
        if on_scene:
            on_scene()
    return PNetSamples(
        torch.cat([p.crops for p in parts]),
        np.concatenate([p.labels for p in parts]),
        np.concatenate([p.targets for p in parts]),
        np.concatenate([p.masked for p in parts]),
    )


def finetune_rnet_onet(
    mtcnn: Any,
    scenes: list[Any],
    config: DetectorTrainConfig,
    nets: Sequence[str],
    log: Callable[[str], None],
    on_scene: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Samples from the scenes (hard negatives from ``mtcnn`` as it is), then each net in turn."""
    started = time.monotonic()
    samples = build_samples(scenes, mtcnn, config, on_scene)
    counts = _counts(samples.labels, samples.masked)
    counts["neg_vetoed"] = samples.vetoed
    log(f"RNet/ONet samples from {len(scenes)} scenes: {counts} "
        f"({time.monotonic() - started:.0f} s)")
    info: dict[str, Any] = {"config": asdict(config), "counts": counts}
    for name in nets:
        crops = samples.crops24 if name == "rnet" else samples.crops48
        net = getattr(mtcnn, name)
        info[f"{name}_before"] = score_report(net, crops, samples, 0.7)
        log(f"{name} before (train samples): {info[f'{name}_before']}")
        info[f"{name}_train"] = finetune(net, crops, samples, config, log)
        info[f"{name}_after"] = score_report(net, crops, samples, 0.7)
        log(f"{name} after (train samples): {info[f'{name}_after']}")
    info["seconds"] = time.monotonic() - started
    return info


def finetune_pnet(
    pnet: Any,
    scenes: list[Any],
    config: PNetTrainConfig,
    val_scenes: list[Any] | None,
    log: Callable[[str], None],
    on_scene: Callable[[], None] | None = None,
    union_with: Any | None = None,
) -> dict[str, Any]:
    """PNet on 12 x 12 windows of ``scenes``; ``val_scenes`` adds a held-out window report.

    The report is the share of masked / unmasked face windows PNet passes at its threshold,
    and of negative windows (a proxy: a face needs only one window of the pyramid to pass).
    With ``union_with`` (the first PNet of a UnionNet) it also reports the union's shares.
    """
    from worker.pipeline.detect import UnionNet

    started = time.monotonic()
    pnet.eval()
    samples = build_pnet_samples(scenes, pnet, config, on_scene)
    counts = _counts(samples.labels, samples.masked)
    log(f"PNet samples from {len(scenes)} scenes: {counts} ({time.monotonic() - started:.0f} s)")
    info: dict[str, Any] = {"config": asdict(config), "counts": counts}
    val = build_pnet_samples(val_scenes, pnet, config) if val_scenes else None
    if val is not None:
        info["val_counts"] = _counts(val.labels, val.masked)
        info["before_val"] = score_report(pnet, val.crops, val, config.threshold)
        log(f"pnet before (val windows): {info['before_val']}")
    info["before"] = score_report(pnet, samples.crops, samples, config.threshold)
    log(f"pnet before (train windows): {info['before']}")
    info["train"] = finetune(pnet, samples.crops, samples, config, log)
    info["after"] = score_report(pnet, samples.crops, samples, config.threshold)
    log(f"pnet after (train windows): {info['after']}")
    if val is not None:
        info["after_val"] = score_report(pnet, val.crops, val, config.threshold)
        log(f"pnet after (val windows): {info['after_val']}")
        if union_with is not None:
            union = UnionNet(union_with, pnet)
            info["union_val"] = score_report(union, val.crops, val, config.threshold)
            log(f"union of both PNets (val windows): {info['union_val']}")
    info["seconds"] = time.monotonic() - started
    return info


def train_detector(
    shared_dir: Path,
    out: Path,
    config: DetectorTrainConfig,
    split_file: Path,
    stages: Sequence[str] = STAGES,
    pnet_config: PNetTrainConfig | None = None,
    init: Path | None = None,
    val_split_file: Path | None = None,
    log: Callable[[str], None] = logger.info,
    on_scene: Callable[[], None] | None = None,
    pnet_union: bool = False,
) -> dict[str, Any]:
    """Fine-tune the named MTCNN stages on the kaggle train scenes; save all three nets.

    Nets start from the wheel's weights, or from ``init`` (a file this function wrote).
    PNet goes first, so RNet/ONet's hard negatives are what the new PNet proposes.
    With ``pnet_union`` the fine-tuned PNet is a second one (``pnet_masked``, a copy of the
    first to start with, or init's own) and the first stays as it was: the detector then
    runs both (:class:`worker.pipeline.detect.UnionNet`).
    A stage to be retrained must not be a union already (an ``init`` with ``rnet_masked``).
    """
    import copy

    import torch
    from facenet_pytorch import MTCNN

    from ml.data.scenes import load_scenes, read_split
    from worker.pipeline.detect import (
        UnionNet,
        detector_state,
        load_detector_weights,
        split_stage,
    )

    unknown = set(stages) - set(STAGES)
    if unknown or not stages:
        raise ValueError(f"stages must be some of {list(STAGES)}, not {list(stages)}")
    started = time.monotonic()
    root = shared_dir / SCENES
    scenes = load_scenes(root / "annotations", root / "images", read_split(split_file))
    val_scenes = (load_scenes(root / "annotations", root / "images", read_split(val_split_file))
                  if val_split_file is not None else None)
    mtcnn = MTCNN(
        keep_all=True,
        min_face_size=config.min_face_size,
        thresholds=list(config.hard_thresholds),
        post_process=False,
        device="cpu",
    )
    if init is not None:
        load_detector_weights(mtcnn, str(init.resolve()), torch.device("cpu"))
    info: dict[str, Any] = {
        "stages": list(stages),
        "init": init.name if init is not None else None,
        "scenes": len(scenes),
        "split_file": split_file.name,
    }
    later = [name for name in ("rnet", "onet") if name in stages]
    unions = [name for name in later if isinstance(getattr(mtcnn, name), UnionNet)]
    if unions:
        raise ValueError(f"{init} holds two nets for {unions}: retrain from a file with one")
    first, masked = split_stage(mtcnn.pnet)
    if pnet_union:
        masked = masked if masked is not None else copy.deepcopy(first)
        mtcnn.pnet = UnionNet(first, masked)
    info["pnet_union"] = masked is not None
    if "pnet" in stages:
        trained = masked if pnet_union else first
        info["pnet"] = finetune_pnet(trained, scenes, pnet_config or PNetTrainConfig(),
                                     val_scenes, log, on_scene,
                                     union_with=first if pnet_union else None)
    if later:
        info["rnet_onet"] = finetune_rnet_onet(mtcnn, scenes, config, later, log, on_scene)
    info["seconds"] = time.monotonic() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**detector_state(mtcnn), "info": info}, out)
    return info


def _counts(labels: np.ndarray, masked: np.ndarray) -> dict[str, int]:
    counts = {
        name: int((labels == lab).sum())
        for name, lab in (("neg", LABEL_NEG), ("pos", LABEL_POS), ("part", LABEL_PART))
    }
    counts["pos_masked"] = int(((labels == LABEL_POS) & masked).sum())
    return counts
