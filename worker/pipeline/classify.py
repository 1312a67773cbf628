"""Mask classification: our CNN, its checkpoint format and the crop preprocessing it shares
with training."""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torchvision.ops import roi_align

from worker.pipeline.types import FaceLabels

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CropPreset:
    """How a face box becomes the network's input; the same for training and inference.

    The box is grown by ``margin`` of its size on each side, made square around its centre
    (so the aspect ratio of the face is kept) and resampled to ``size`` x ``size``.
    """

    size: int = 64
    margin: float = 0.15
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)


def square_boxes(xyxy: np.ndarray, margin: float) -> np.ndarray:
    """Grow boxes (N, 4) by ``margin`` per side and make them square around their centre."""
    xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    side = np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]) * (1 + 2 * margin)
    half = side[:, None] / 2
    return np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)


def normalize(batch: torch.Tensor, preset: CropPreset) -> torch.Tensor:
    """uint8-range float (N, 3, S, S) -> the network's normalised input."""
    mean = torch.tensor(preset.mean, device=batch.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(preset.std, device=batch.device).view(1, 3, 1, 1) * 255
    return (batch - mean) / std


def crop_faces(
    frame: np.ndarray | torch.Tensor, xyxy: np.ndarray, preset: CropPreset
) -> torch.Tensor:
    """Cut the faces of one frame into a float batch (N, 3, S, S) in 0..255, not normalised.

    ``roi_align`` averages several samples per output pixel, so large faces are downscaled
    without aliasing; parts of a box outside the frame read as black. Each face is cut from
    the part of the frame around it (``_around``): only that part is converted to float.
    """
    image = torch.as_tensor(frame) if isinstance(frame, np.ndarray) else frame
    squares = square_boxes(xyxy, preset.margin)
    if squares.shape[0] == 0:
        return torch.zeros((0, 3, preset.size, preset.size), device=image.device)
    crops = []
    for square in squares:
        part, box = _around(image, square)
        part = part.permute(2, 0, 1).unsqueeze(0).float()  # (1, 3, h, w)
        roi = torch.as_tensor(np.concatenate([[0.0], box]).astype(np.float32)[None],
                              device=image.device)
        crops.append(roi_align(part, roi, output_size=preset.size, spatial_scale=1.0,
                               sampling_ratio=-1, aligned=True))
    return torch.cat(crops)


# Pixels kept around a face's box when the frame is cut to it: roi_align reads one pixel
# past a sample point, so 2 keep every sample of the box where the whole frame has it.
_ROI_PAD = 2


def _around(image: torch.Tensor, square: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """The part of ``image`` (H, W, 3) that the box ``square`` (4,) reads, and the box in its
    coordinates (a whole 720p frame converted to float cost more than the network on a face
    or two). Where the box leaves the frame, the part ends at the frame's edge as the frame
    does, so the crop is the whole frame's."""
    height, width = image.shape[:2]
    x0 = max(0, int(np.floor(square[0])) - _ROI_PAD)
    y0 = max(0, int(np.floor(square[1])) - _ROI_PAD)
    x1 = min(width, int(np.ceil(square[2])) + _ROI_PAD)
    y1 = min(height, int(np.ceil(square[3])) + _ROI_PAD)
    if x0 >= x1 or y0 >= y1:  # the box wholly outside the frame: nothing to cut
        return image, square
    offset = np.array([x0, y0, x0, y0], np.float32)
    return image[y0:y1, x0:x1], square - offset


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class MaskCNN(nn.Module):
    """Conv + pool blocks, global pooling and a small fully connected head."""

    def __init__(self, num_classes: int, width: int = 32, dropout: float = 0.3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(3, width),
            _block(width, width * 2),
            _block(width * 2, width * 4),
            nn.Conv2d(width * 4, width * 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(width * 8),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(width * 8, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class EnsembleNet(nn.Module):
    """Several classifiers of one architecture read as one: their softmax probabilities averaged.

    ``forward`` returns the log of the mean probability, so the softmax that callers apply to
    "logits" gives back exactly the mean. Averaging members trained with different seeds
    lowers the seed-to-seed spread that a single network shows (docs/model-card.md).
    """

    def __init__(self, num_classes: int, member_arch: str, members: int,
                 member_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.members = nn.ModuleList(
            build_model(member_arch, num_classes, **(member_kwargs or {})) for _ in range(members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probabilities = torch.stack([torch.softmax(m(x), dim=1) for m in self.members])
        return probabilities.mean(dim=0).clamp_min(1e-12).log()


def build_model(arch: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """The classifier architectures we ship, by name: ``mask_cnn``, and ``ensemble`` (several
    trained members averaged, :func:`ensemble_checkpoint`). Variants measured and not shipped
    (an O-Net head, MobileNetV3) are in git history and docs/history/model-card.md."""
    if arch == "ensemble":
        return EnsembleNet(num_classes, **kwargs)
    if arch == "mask_cnn":
        return MaskCNN(num_classes, **kwargs)
    raise ValueError(f"unknown classifier architecture {arch!r}")


@dataclass
class Checkpoint:
    """What a trained classifier file holds: weights plus everything needed to use them."""

    arch: str
    class_names: tuple[str, ...]
    preset: CropPreset
    state_dict: dict[str, torch.Tensor]
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Half precision halves the committed file; weights are cast back to float on load.
        weights = {
            k: (v.half() if v.is_floating_point() else v) for k, v in self.state_dict.items()
        }
        torch.save(
            {
                "format": 1,
                "arch": self.arch,
                "arch_kwargs": self.arch_kwargs,
                "class_names": list(self.class_names),
                "preset": asdict(self.preset),
                "state_dict": weights,
                "metrics": self.metrics,
                "training": self.training,
            },
            path,
        )

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        if not path.is_file():
            raise FileNotFoundError(f"classifier checkpoint not found: {path}")
        raw = torch.load(path, map_location="cpu", weights_only=True)
        preset = raw["preset"]
        return cls(
            arch=raw["arch"],
            class_names=tuple(raw["class_names"]),
            preset=CropPreset(
                size=int(preset["size"]),
                margin=float(preset["margin"]),
                mean=tuple(preset["mean"]),
                std=tuple(preset["std"]),
            ),
            state_dict={
                k: (v.float() if v.is_floating_point() else v) for k, v in raw["state_dict"].items()
            },
            arch_kwargs=dict(raw.get("arch_kwargs", {})),
            metrics=dict(raw.get("metrics", {})),
            training=dict(raw.get("training", {})),
        )

    def build(self) -> nn.Module:
        model = build_model(self.arch, len(self.class_names), **self.arch_kwargs)
        model.load_state_dict(self.state_dict)
        return model.eval()


def ensemble_checkpoint(members: list[Checkpoint]) -> Checkpoint:
    """One checkpoint that averages ``members`` (same architecture, classes and crop preset)."""
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two checkpoints")
    first = members[0]
    for other in members[1:]:
        if (other.arch, other.class_names, other.preset, other.arch_kwargs) != (
                first.arch, first.class_names, first.preset, first.arch_kwargs):
            raise ValueError("ensemble members must share architecture, classes and crop preset")
    if first.arch == "ensemble":
        raise ValueError("ensemble members must be single networks")
    state = {f"members.{k}.{name}": value
             for k, member in enumerate(members) for name, value in member.state_dict.items()}
    return Checkpoint(
        arch="ensemble",
        class_names=first.class_names,
        preset=first.preset,
        state_dict=state,
        arch_kwargs={"member_arch": first.arch, "members": len(members),
                     "member_kwargs": dict(first.arch_kwargs)},
        training={
            "data_dirs": sorted({d for m in members for d in m.training.get("data_dirs", [])}),
            "members": [m.training for m in members],
        },
    )


class MaskClassifier(Protocol):
    """Labels face boxes in a frame."""

    class_names: tuple[str, ...]

    def classify(self, frame: np.ndarray, xyxy: np.ndarray) -> FaceLabels: ...


class CNNMaskClassifier:
    """Runs a trained checkpoint on the faces of a frame, all crops in one batch.

    With ``mirror`` (the default) each face is also read in its mirror image and the two
    probability rows are averaged: a face and its mirror are the same face (docs/model-card.md,
    "Mirrored reading": a small, consistent gain on unmasked faces in scenes). The mirrored
    crops ride in the same batch, so the cost is one larger forward pass.
    """

    def __init__(self, checkpoint: Checkpoint, device: torch.device, mirror: bool = True) -> None:
        self.checkpoint = checkpoint
        self.class_names = checkpoint.class_names
        self.preset = checkpoint.preset
        self.device = device
        self.mirror = mirror
        self.model = checkpoint.build().to(device)

    @classmethod
    def from_file(cls, path: Path, device: torch.device, mirror: bool = True
                  ) -> CNNMaskClassifier:
        return cls(Checkpoint.load(path), device, mirror)

    def reading(self, mirror: bool) -> CNNMaskClassifier:
        """The same network, reading faces mirrored or not (for a job that asks otherwise)."""
        other = copy.copy(self)
        other.mirror = mirror
        return other

    def classify(self, frame: np.ndarray, xyxy: np.ndarray) -> FaceLabels:
        if len(xyxy) == 0:
            return FaceLabels(self.class_names, np.zeros((0, len(self.class_names)), np.float32))
        with torch.inference_mode():
            image = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device)
            batch = normalize(crop_faces(image, xyxy, self.preset), self.preset)
            if self.mirror:  # the square crop mirrored = the mirrored frame's crop of the face
                batch = torch.cat([batch, batch.flip(3)])
            if self.device.type == "cpu":  # ~2x faster convolutions and pooling on the CPU
                batch = batch.contiguous(memory_format=torch.channels_last)
            probabilities = torch.softmax(self.model(batch), dim=1)
            if self.mirror:
                probabilities = probabilities.view(2, len(xyxy), -1).mean(dim=0)
        return FaceLabels(self.class_names, probabilities.float().cpu().numpy())
