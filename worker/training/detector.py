"""Fine-tune facenet-pytorch MTCNN's RNet and ONet on the kaggle TRAIN scenes (masked faces).

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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

POS_IOU = 0.65
PART_IOU = 0.4
NEG_IOU = 0.3
LABEL_NEG, LABEL_POS, LABEL_PART = 0, 1, 2
SCENES = "datasets/kaggle-scenes-dev"


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) xyxy box with (N, 4) boxes, continuous coordinates."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


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


@dataclass
class SampleSet:
    crops24: Any  # uint8 (N, 3, 24, 24)
    crops48: Any  # uint8 (N, 3, 48, 48)
    labels: np.ndarray  # (N,) LABEL_*
    targets: np.ndarray  # (N, 4) float32, zeros for negatives
    masked: np.ndarray  # (N,) bool: the GT face is with_mask/incorrect_mask


def load_rgb(path: Path, upscale: float) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as opened:
        rgb = opened.convert("RGB")
    if upscale != 1.0:  # as MTCNNDetector enlarges frames
        size = (max(1, round(rgb.width * upscale)), max(1, round(rgb.height * upscale)))
        rgb = rgb.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(rgb)


class _Collector:
    """Boxes of one scene with their label, regression target and masked flag."""

    def __init__(self, gt: np.ndarray, is_masked: np.ndarray) -> None:
        self.gt, self.is_masked = gt, is_masked
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
        self.targets.append(
            regression_target(box, self.gt[idx]) if face else np.zeros(4, np.float32)
        )
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
    for face in gt:
        if min(face[2] - face[0], face[3] - face[1]) < config.min_face:
            continue
        quota = {LABEL_POS: config.pos_per_face, LABEL_PART: config.part_per_face}
        for box in jitter_boxes(
            face[None], 12 * config.pos_per_face, rng, shift=0.3, scale=(0.75, 1.3)
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


def build_samples(
    scenes: list[Any],
    mtcnn: Any,
    config: DetectorTrainConfig,
    on_scene: Callable[[], None] | None = None,
) -> SampleSet:
    import torch

    from worker.pipeline.types import CLASS_WITHOUT_MASK

    rng = np.random.default_rng(config.seed)
    c24, c48, labels, targets, masked = [], [], [], [], []
    for scene in scenes:
        frame = load_rgb(scene.image_path, config.upscale)
        img = torch.as_tensor(frame.copy()).permute(2, 0, 1).float()
        gt = scene.xyxy.astype(np.float64) * config.upscale
        is_masked = np.array([lab != CLASS_WITHOUT_MASK for lab in scene.labels], bool)
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
    return SampleSet(
        torch.cat(c24),
        torch.cat(c48),
        np.concatenate(labels),
        np.concatenate(targets).astype(np.float32),
        np.concatenate(masked),
    )


def _forward(net: Any, x: Any) -> tuple[Any, Any]:
    out = net(x)
    return out[0], out[-1]  # regression, softmax probabilities


def finetune(
    net: Any,
    crops: Any,
    samples: SampleSet,
    config: DetectorTrainConfig,
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
    history = []
    for epoch in range(config.epochs):
        order = torch.randperm(len(labels), generator=gen)
        total = {"cls": 0.0, "box": 0.0, "n": 0}
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            x = normalise(crops[idx])
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


def score_report(net: Any, crops: Any, samples: SampleSet, threshold: float) -> dict[str, Any]:
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


def train_detector(
    shared_dir: Path,
    out: Path,
    config: DetectorTrainConfig,
    split_file: Path,
    log: Callable[[str], None] = logger.info,
    on_scene: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Build samples from the train scenes, fine-tune RNet and ONet, save both state dicts."""
    import torch
    from facenet_pytorch import MTCNN

    from worker.evaluation.scenes import load_scenes, read_split

    started = time.monotonic()
    root = shared_dir / SCENES
    ids = read_split(split_file)
    scenes = load_scenes(root / "annotations", root / "images", ids)
    mtcnn = MTCNN(
        keep_all=True,
        min_face_size=config.min_face_size,
        thresholds=list(config.hard_thresholds),
        post_process=False,
        device="cpu",
    )
    samples = build_samples(scenes, mtcnn, config, on_scene)
    counts = {
        name: int((samples.labels == lab).sum())
        for name, lab in (("neg", LABEL_NEG), ("pos", LABEL_POS), ("part", LABEL_PART))
    }
    counts["pos_masked"] = int(((samples.labels == LABEL_POS) & samples.masked).sum())
    log(f"samples from {len(scenes)} scenes: {counts} ({time.monotonic() - started:.0f} s)")
    info: dict[str, Any] = {
        "config": asdict(config),
        "scenes": len(scenes),
        "counts": counts,
        "split_file": split_file.name,
    }
    for name, crops, thr in (("rnet", samples.crops24, 0.7), ("onet", samples.crops48, 0.7)):
        net = getattr(mtcnn, name)
        info[f"{name}_before"] = score_report(net, crops, samples, thr)
        log(f"{name} before (train samples): {info[f'{name}_before']}")
        info[f"{name}_train"] = finetune(net, crops, samples, config, log)
        info[f"{name}_after"] = score_report(net, crops, samples, thr)
        log(f"{name} after (train samples): {info[f'{name}_after']}")
    info["seconds"] = time.monotonic() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"rnet": mtcnn.rnet.state_dict(), "onet": mtcnn.onet.state_dict(), "info": info}, out
    )
    return info
