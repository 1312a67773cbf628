"""Choice of the torch device and thread count for this process."""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when a GPU is visible, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def configure_threads(threads: int) -> None:
    """Cap torch's intra-op threads (0 keeps torch's default)."""
    if threads > 0:
        torch.set_num_threads(threads)
        logger.debug("torch threads set to %d", threads)


def visible_gpu_count() -> int:
    """GPUs torch can use; asks the driver without creating a CUDA context (safe before fork)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def device_for_process(setting: str, gpu_count: int, process_index: int) -> str:
    """The device of one worker pool process: with ``auto`` and GPUs present, pool process i
    takes GPU i (mod the GPU count), so one process per GPU spreads over all of them."""
    if setting == "auto" and gpu_count > 0:
        return f"cuda:{process_index % gpu_count}"
    return setting
