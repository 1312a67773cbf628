"""Face detection: a small interface and the facenet-pytorch MTCNN backend behind it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from worker.pipeline.config import DetectorConfig
from worker.pipeline.types import Detections

logger = logging.getLogger(__name__)


class FaceDetector(Protocol):
    """Finds faces in RGB frames."""

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """One Detections per frame; frames are (H, W, 3) uint8 RGB."""
        ...


class MTCNNDetector:
    """facenet-pytorch's MTCNN with the weights shipped in its wheel.

    MTCNN returns ``None`` or object arrays depending on what it found; this adapter turns
    every answer into float32 ``Detections`` and never raises on an empty or tiny frame.
    """

    def __init__(self, config: DetectorConfig, device: torch.device) -> None:
        from facenet_pytorch import MTCNN  # heavy import, deferred until a detector is built

        self.config = config
        self.device = device
        self._mtcnn = MTCNN(
            keep_all=True,
            min_face_size=config.min_face_size,
            thresholds=list(config.thresholds),
            post_process=False,
            select_largest=False,
            device=device,
        )
        if config.detector_weights is not None:
            load_detector_weights(self._mtcnn, config.detector_weights, device)
        if device.type == "cpu":
            for name in NETS:
                feed_channels_last(getattr(self._mtcnn, name))

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        # Batching gives MTCNN no gain on CPU and needs equal frame sizes: go frame by frame.
        return [self._detect_one(frame) for frame in frames]

    def _detect_one(self, frame: np.ndarray) -> Detections:
        height, width = frame.shape[:2]
        scale = self.config.scale_for(width, height)
        if scale != 1.0:
            frame = _resize(frame, scale)
        # MTCNN's image pyramid is empty for frames smaller than min_face_size (torch.cat crash).
        if min(frame.shape[:2]) < max(self.config.min_face_size, 12):
            return Detections.empty()
        with torch.inference_mode():
            boxes, probs, points = self._mtcnn.detect(frame, landmarks=True)
        if boxes is None:
            return Detections.empty()
        xyxy = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) / scale
        confidence = np.asarray(probs, dtype=np.float32).reshape(-1)
        landmarks = np.asarray(points, dtype=np.float32).reshape(-1, 5, 2) / scale
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        sized = (xyxy[:, 2] - xyxy[:, 0] >= 2) & (xyxy[:, 3] - xyxy[:, 1] >= 2)
        keep = (confidence >= self.config.face_threshold) & sized
        return Detections(xyxy[keep], confidence[keep], landmarks[keep])


#: ``"a.pt+b.pt"`` as detector weights: one MTCNN per file, their boxes merged (MergedDetector).
WEIGHTS_SEPARATOR = "+"
MERGE_IOU = 0.5


def weights_names(weights: str | None) -> list[str | None]:
    """The weights files a detector setting names: one per MTCNN (None: the wheel's weights)."""
    if weights is None:
        return [None]
    return [part for part in weights.split(WEIGHTS_SEPARATOR) if part] or [None]


class MergedDetector:
    """Several detectors on the same frames; where their boxes overlap (IoU >= MERGE_IOU), the
    more confident one is kept.

    The shipped detector keeps unmasked faces that a detector retrained on masked faces loses,
    and the retrained one finds masked faces the shipped one misses (docs/model-card.md, "Two
    detectors merged"); merged, each covers the other's misses, at the sum of their costs.
    """

    def __init__(self, detectors: Sequence[FaceDetector]) -> None:
        self.detectors = list(detectors)

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        from torchvision.ops import nms

        answers = [detector.detect(frames) for detector in self.detectors]
        merged = []
        for per_frame in zip(*answers, strict=True):
            xyxy = np.concatenate([d.xyxy for d in per_frame])
            confidence = np.concatenate([d.confidence for d in per_frame])
            landmarks = np.concatenate([d.landmarks for d in per_frame])
            keep = nms(torch.from_numpy(xyxy), torch.from_numpy(confidence), MERGE_IOU).numpy()
            merged.append(Detections(xyxy[keep], confidence[keep], landmarks[keep]))
        return merged


def build_detector(config: DetectorConfig, device: torch.device) -> FaceDetector:
    """The detector a config names: one MTCNN, or a MergedDetector for ``a.pt+b.pt``."""
    from dataclasses import replace

    names = weights_names(config.detector_weights)
    if len(names) == 1:
        return MTCNNDetector(config, device)
    return MergedDetector([MTCNNDetector(replace(config, detector_weights=name), device)
                           for name in names])


NETS = ("pnet", "rnet", "onet")
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def masked_key(name: str) -> str:
    """A weights file's key for a stage's second net (``pnet_masked``, ...): a UnionNet."""
    return f"{name}_masked"


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
        out1, out2 = self.first(x), self.second(x)
        second = out2[-1][:, 1:2] > out1[-1][:, 1:2]
        return tuple(torch.where(second, b, a) for a, b in zip(out1, out2, strict=True))


def _to_channels_last(module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])


def feed_channels_last(net: torch.nn.Module) -> None:
    """Hand a stage's network its input in channels-last layout.

    On the CPU, PyTorch's max-pooling and convolutions on NCHW tensors dominate MTCNN's time;
    the same networks on channels-last tensors run 2-2.6x faster with outputs equal to within
    2e-6 (docs/benchmarks.md, "Detector networks on channels-last tensors"). The weights and
    ``detect_face`` are untouched: only the layout of each stage's input changes.
    """
    net.register_forward_pre_hook(_to_channels_last)


def resolve_weights(name: str) -> Path:
    """A bare file name means one of the weights shipped in worker/models/."""
    path = Path(name)
    return path if path.is_absolute() or path.parent != Path(".") else MODELS_DIR / path


def load_detector_weights(mtcnn: Any, name: str, device: torch.device) -> None:
    """Replace MTCNN's PNet/RNet/ONet (whichever the file holds) with fine-tuned state dicts.

    A ``pnet_masked`` (``rnet_masked``, ``onet_masked``) entry adds a second net to that
    stage, joined to the first by :class:`UnionNet`.
    """
    from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

    path = resolve_weights(name)
    if not path.is_file():
        raise FileNotFoundError(f"detector weights not found: {path}")
    state = torch.load(path, map_location=device, weights_only=True)
    loaded = []
    for net_name, build in (("pnet", PNet), ("rnet", RNet), ("onet", ONet)):
        net = getattr(mtcnn, net_name)
        if isinstance(net, UnionNet):  # weights loaded twice: start from the plain net
            net = net.first
            setattr(mtcnn, net_name, net)
        if net_name in state:
            net.load_state_dict(state[net_name])
            loaded.append(net_name)
        if masked_key(net_name) in state:
            second = build(pretrained=False)
            second.load_state_dict(state[masked_key(net_name)])
            second.to(device).eval()
            setattr(mtcnn, net_name, UnionNet(net, second))
            loaded.append(masked_key(net_name))
    logger.info("MTCNN weights from %s (%s)", path, ", ".join(loaded))


def split_stage(net: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """(first net, second net or None) of one MTCNN stage, a plain net or a UnionNet."""
    if isinstance(net, UnionNet):
        return net.first, net.second
    return net, None


def detector_state(mtcnn: Any) -> dict[str, Any]:
    """MTCNN's three stages as a weights file holds them: each union as first + ``*_masked``."""
    state: dict[str, Any] = {}
    for name in NETS:
        first, second = split_stage(getattr(mtcnn, name))
        state[name] = first.state_dict()
        if second is not None:
            state[masked_key(name)] = second.state_dict()
    return state


def _resize(frame: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    height, width = frame.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))
