"""Class-folder crop datasets, preloaded into memory, and CCTV-like augmentation."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from maskwatch.core.labels import CLASS_NOT_FACE, MASK_LABELS, Label
from ml.data.crops import crop_to_input, face_size_px
from worker.pipeline.classify import CropPreset

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
# Where a folder class goes when a model lacks it: an incorrectly worn mask is not compliant.
FALLBACK_CLASS: dict[str, str] = {Label.INCORRECT_MASK: Label.WITHOUT_MASK}
# Class folders a crop dir may hold, in canonical (checkpoint) order.
CROP_CLASSES = (*MASK_LABELS, CLASS_NOT_FACE)


@dataclass(frozen=True)
class CropFile:
    """One labelled crop on disk."""

    path: Path
    class_name: str  # the folder it sits in
    folder: str  # label of the data dir it came from (see ``folder_label``)


def folder_label(data_dir: Path) -> str:
    """A short name for a data dir: ``parent/name`` (``kaggle/val``), or ``name`` at the root."""
    resolved = data_dir.resolve()
    return f"{resolved.parent.name}/{resolved.name}" if resolved.parent.name else resolved.name


def folder_classes(data_dirs: Sequence[Path]) -> tuple[str, ...]:
    """The known class folders present in any of ``data_dirs``, in canonical order."""
    present = {p.name for d in data_dirs if d.is_dir() for p in d.iterdir() if p.is_dir()}
    return tuple(name for name in CROP_CLASSES if name in present)


def list_crops(data_dirs: Sequence[Path]) -> list[CropFile]:
    """Every image under the known class folders of ``data_dirs``, in a stable order."""
    files: list[CropFile] = []
    for data_dir in data_dirs:
        if not data_dir.is_dir():
            raise FileNotFoundError(f"data dir not found: {data_dir}")
        label = folder_label(data_dir)
        for class_name in CROP_CLASSES:
            class_dir = data_dir / class_name
            if class_dir.is_dir():
                files.extend(CropFile(p, class_name, label) for p in sorted(class_dir.iterdir())
                             if p.suffix.lower() in IMAGE_SUFFIXES)
    return files


def label_indices(files: Sequence[CropFile], class_names: Sequence[str]) -> np.ndarray:
    """(N,) int64 class index per crop; folder classes the model lacks use FALLBACK_CLASS."""
    index = {name: k for k, name in enumerate(class_names)}
    labels = []
    for crop in files:
        name = crop.class_name if crop.class_name in index else FALLBACK_CLASS.get(crop.class_name)
        if name not in index:
            raise ValueError(f"{crop.path}: class {crop.class_name!r} not in {list(class_names)}")
        labels.append(index[name])
    return np.asarray(labels, np.int64)


def load_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB, writable (torch.from_numpy warns on read-only arrays)."""
    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def is_greyscale(image: np.ndarray, tolerance: float = 3.0) -> bool:
    """Whether an RGB image is grey (IR/night look): mean channel difference within tolerance.

    JPEG chroma noise leaves grey images a little off-grey, hence the tolerance (0..255 units).
    """
    pixels = image.reshape(-1, 3).astype(np.int16)
    spread = np.abs(pixels[:, 0] - pixels[:, 1]) + np.abs(pixels[:, 1] - pixels[:, 2])
    return float(spread.mean()) / 2 <= tolerance


@dataclass
class CropTensors:
    """Crops decoded once and cut to network input, with what the evaluation slices need."""

    images: torch.Tensor  # (N, 3, S, S) uint8, the un-normalised network input
    labels: torch.Tensor  # (N,) int64
    face_px: np.ndarray  # (N,) float32 face side in source pixels
    greyscale: np.ndarray  # (N,) bool
    folders: list[str]  # (N,) data dir base name


def preload(files: Sequence[CropFile], class_names: Sequence[str], preset: CropPreset,
            on_item: Callable[[], None] | None = None) -> CropTensors:
    """Decode every crop and resample it exactly as inference does (``crop_to_input``)."""
    images = torch.zeros((len(files), 3, preset.size, preset.size), dtype=torch.uint8)
    face_px = np.zeros(len(files), np.float32)
    greyscale = np.zeros(len(files), bool)
    for k, crop in enumerate(files):
        rgb = load_rgb(crop.path)
        images[k] = crop_to_input(rgb, preset).round().clamp(0, 255).byte()
        face_px[k] = face_size_px(max(rgb.shape[:2]), preset.margin)
        greyscale[k] = is_greyscale(rgb)
        if on_item is not None:
            on_item()
    return CropTensors(images, torch.from_numpy(label_indices(files, class_names)), face_px,
                       greyscale, [crop.folder for crop in files])


def class_counts(labels: torch.Tensor, num_classes: int) -> list[int]:
    return torch.bincount(labels, minlength=num_classes).tolist()


def sample_weights(labels: torch.Tensor, num_classes: int, power: float,
                   groups: Sequence[str] | None = None) -> torch.Tensor:
    """Per-sample draw weights: count(stratum) ** -power (1 = fully balanced, 0 = as found).

    A stratum is the class, or with ``groups`` (one name per sample, e.g. its data dir) the
    pair (group, class), so that a small source's classes are drawn as often as a large one's.
    """
    if groups is None:
        counts = torch.bincount(labels, minlength=num_classes).double().clamp(min=1)
        return counts.pow(-power)[labels]
    if len(groups) != len(labels):
        raise ValueError(f"{len(groups)} groups for {len(labels)} labels")
    strata = list(zip(groups, labels.tolist(), strict=True))
    sizes: dict[tuple[str, int], int] = {}
    for stratum in strata:
        sizes[stratum] = sizes.get(stratum, 0) + 1
    return torch.tensor([float(sizes[s]) for s in strata], dtype=torch.float64).pow(-power)


class LowResolution:
    """Downscale a crop to a random side (CCTV-sized face) and back up: lost detail."""

    def __init__(self, sides: tuple[int, int]) -> None:
        self.sides = sides

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        size = image.shape[-1]
        side = int(torch.randint(self.sides[0], self.sides[1] + 1, ()).item())
        if side >= size:
            return image
        small = F.interpolate(image[None].float(), size=(side, side), mode="bilinear",
                              antialias=True, align_corners=False)
        back = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
        return back[0].round().clamp(0, 255).to(torch.uint8)


class LowLight:
    """Darken by a random gain: underexposed night frames."""

    def __init__(self, gains: tuple[float, float]) -> None:
        self.gains = gains

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        gain = float(torch.empty(()).uniform_(*self.gains))
        return (image.float() * gain).round().clamp(0, 255).to(torch.uint8)


class SensorNoise:
    """Additive Gaussian noise with a random sigma in 0..255 units."""

    def __init__(self, sigmas: tuple[float, float]) -> None:
        self.sigmas = sigmas

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        sigma = float(torch.empty(()).uniform_(*self.sigmas))
        noisy = image.float() + torch.randn(image.shape) * sigma
        return noisy.round().clamp(0, 255).to(torch.uint8)


class FrameEdge:
    """Black out a band along some sides: a face box that leaves the frame at inference.

    ``crop_faces`` reads the outside of the frame as black, while training crops are filled by
    reflection. Tight photos (uploads, most chandrikadeb7 pictures) thus reach the network with
    black bands that it never saw. Each side is blanked with probability ``side_p``, by up to
    ``max_band`` of the crop side.
    """

    def __init__(self, max_band: float, side_p: float = 0.5) -> None:
        self.max_band = max_band
        self.side_p = side_p

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        size = image.shape[-1]
        out = image.clone()
        for side in range(4):
            if float(torch.rand(())) >= self.side_p:
                continue
            band = int(round(float(torch.empty(()).uniform_(0.0, self.max_band)) * size))
            if band <= 0:
                continue
            if side == 0:
                out[..., :band, :] = 0
            elif side == 1:
                out[..., -band:, :] = 0
            elif side == 2:
                out[..., :, :band] = 0
            else:
                out[..., :, -band:] = 0
        return out


def cctv_augmentation(frame_edge_p: float = 0.0) -> v2.Compose:
    """Random CCTV look for a (3, S, S) uint8 crop: geometry, resolution, light, codec, noise."""
    return v2.Compose([
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.RandomAffine(degrees=10, translate=(0.06, 0.06), scale=(0.9, 1.12))],
                       p=0.7),
        v2.RandomApply([FrameEdge(0.25)], p=frame_edge_p),
        v2.RandomApply([LowResolution((12, 32))], p=0.4),
        v2.RandomApply([v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.3, hue=0.03)],
                       p=0.8),
        v2.RandomApply([LowLight((0.25, 0.6))], p=0.15),
        v2.RandomGrayscale(p=0.15),
        v2.RandomApply([v2.GaussianBlur(5, sigma=(0.3, 1.2))], p=0.2),
        v2.RandomApply([v2.JPEG((20, 70))], p=0.3),
        v2.RandomApply([SensorNoise((2.0, 8.0))], p=0.3),
    ])


class AugmentedCrops(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Preloaded crops with an optional per-sample augmentation."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor,
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.images = images
        self.labels = labels
        self.augment = augment

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        if self.augment is not None:
            image = self.augment(image)
        return image, self.labels[index]


def counts_by_class(labels: torch.Tensor, class_names: Sequence[str]) -> Mapping[str, int]:
    return dict(zip(class_names, class_counts(labels, len(class_names)), strict=True))
