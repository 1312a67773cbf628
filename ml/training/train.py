"""Train the mask classifier on face-crop folders and save it as a Checkpoint."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from maskwatch.core.labels import Label
from ml.data.folders import (
    AugmentedCrops,
    cctv_augmentation,
    counts_by_class,
    folder_classes,
    folder_label,
    list_crops,
    preload,
    sample_weights,
)
from ml.evaluation.crops import evaluate_checkpoint
from worker.pipeline.classify import Checkpoint, CropPreset, build_model, normalize

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Architecture, input size and optimisation recipe."""

    arch: str = "mask_cnn"
    size: int = 48
    width: int = 16  # mask_cnn only
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    balance_power: float = 0.5  # sampling weight count**-p: 1 = balanced, 0 = as found
    balance_by: str = "source"  # "class", or "source": count per (data dir, class) stratum
    label_smoothing: float = 0.1
    frame_edge: float = 0.25  # share of crops given black bands where a box leaves the frame
    merge_incorrect: bool = False  # train incorrect_mask crops as without_mask
    seed: int = 0
    threads: int = 1
    workers: int = 1  # DataLoader processes doing augmentation (0 = in the main process)
    margin: float = CropPreset().margin

    @property
    def preset(self) -> CropPreset:
        return CropPreset(size=self.size, margin=self.margin)

    @property
    def arch_kwargs(self) -> dict[str, Any]:
        if self.arch == "mask_cnn":
            return {"width": self.width}
        return {}


class TrainingObserver(Protocol):
    """Progress reporting hooks (a rich progress bar in the CLI, nothing in tests)."""

    def begin(self, task: str, total: int) -> None: ...

    def advance(self, task: str, info: str = "") -> None: ...


class _Silent:
    def begin(self, task: str, total: int) -> None:
        pass

    def advance(self, task: str, info: str = "") -> None:
        pass


@dataclass
class TrainResult:
    checkpoint: Checkpoint
    history: list[dict[str, float]] = field(default_factory=list)


def train(config: TrainConfig, data_dirs: Sequence[Path], out: Path,
          val_dirs: Sequence[Path] = (), observer: TrainingObserver | None = None
          ) -> TrainResult:
    """Train on ``data_dirs``, save to ``out``, then score the saved file on ``val_dirs``.

    The validation metrics are measured on the checkpoint as saved (fp16 weights, loaded back)
    through ``evaluate_checkpoint``, so ``maskwatch evaluate`` reproduces them exactly.
    """
    observer = observer or _Silent()
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    class_names = folder_classes(data_dirs)
    if config.merge_incorrect:
        class_names = tuple(c for c in class_names if c != Label.INCORRECT_MASK)
    if len(class_names) < 2:
        raise ValueError(f"need at least two class folders in {[str(d) for d in data_dirs]}")
    files = list_crops(data_dirs)
    observer.begin("load", len(files))
    crops = preload(files, class_names, config.preset, lambda: observer.advance("load"))
    counts = counts_by_class(crops.labels, class_names)
    logger.info("training crops per class: %s", counts)

    if config.balance_by not in ("class", "source"):
        raise ValueError(f"balance_by must be 'class' or 'source', not {config.balance_by!r}")
    groups = crops.folders if config.balance_by == "source" else None
    generator = torch.Generator().manual_seed(config.seed)
    sampler = WeightedRandomSampler(
        sample_weights(crops.labels, len(class_names), config.balance_power, groups).tolist(),
        num_samples=len(files), replacement=True, generator=generator)
    loader = DataLoader(
        AugmentedCrops(crops.images, crops.labels, cctv_augmentation(config.frame_edge)),
        batch_size=config.batch_size, sampler=sampler, drop_last=len(files) > config.batch_size,
        num_workers=config.workers, persistent_workers=config.workers > 0)
    model = build_model(config.arch, len(class_names), **config.arch_kwargs)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=max(1, config.epochs * len(loader)),
        pct_start=0.2)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    history = []
    observer.begin("train", config.epochs * len(loader))
    load_seconds = time.perf_counter() - started
    for epoch in range(config.epochs):
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        for images, labels in loader:
            logits = model(normalize(images.float(), config.preset))
            loss = loss_fn(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
            observer.advance("train", f"epoch {epoch + 1} loss {total_loss / seen:.3f}")
        history.append({"epoch": epoch + 1, "loss": total_loss / max(seen, 1),
                        "train_accuracy": correct / max(seen, 1)})
        logger.info("epoch %d: %s", epoch + 1, history[-1])
    train_seconds = time.perf_counter() - started - load_seconds

    checkpoint = Checkpoint(
        arch=config.arch, class_names=class_names, preset=config.preset,
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        arch_kwargs=config.arch_kwargs,
        training={
            "data_dirs": [folder_label(d) for d in data_dirs],
            "val_dirs": [folder_label(d) for d in val_dirs],
            "counts": counts,
            "config": asdict(config),
            "epochs": config.epochs,
            "seconds": round(train_seconds, 1),
            "load_seconds": round(load_seconds, 1),
            "seed": config.seed,
            "torch": str(torch.__version__),
            "history": history,
        },
    )
    checkpoint.save(out)
    if val_dirs:
        saved = Checkpoint.load(out)
        val_files = len(list_crops(val_dirs))
        observer.begin("validate", val_files)
        checkpoint.metrics = {"val": evaluate_checkpoint(
            saved, val_dirs, on_item=lambda: observer.advance("validate"))}
        checkpoint.save(out)
    return TrainResult(checkpoint, history)
