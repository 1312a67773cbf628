"""Face detection: a small interface and the facenet-pytorch MTCNN backend behind it."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from maskwatch.core.analysis import DetectorConfig
from worker.pipeline.cascade import CascadeFrame, UnionNet, detect_faces, follow_faces
from worker.pipeline.types import Detections

logger = logging.getLogger(__name__)


class FaceDetector(Protocol):
    """Finds faces in RGB frames."""

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """One Detections per frame; frames are (H, W, 3) uint8 RGB."""
        ...


Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 in a frame's pixels, x2 and y2 exclusive


@runtime_checkable
class RegionDetector(Protocol):
    """A detector that can also search only some rectangles of a frame."""

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]: ...

    def detect_regions(self, frame: np.ndarray, rects: Sequence[Rect],
                       expected: Sequence[int] | None = None,
                       follow: Sequence[np.ndarray] | None = None) -> Detections:
        """The faces in ``rects`` of ``frame``, in the frame's pixels, found as a detection
        of the whole frame would find them there (at the same enlargement).

        ``expected``: how many faces each rectangle held in the last frame; a detector
        made of several may then stop at the first that finds them all again.
        ``follow``: per rectangle, the last frame's face boxes there (frame pixels), to be
        followed rather than searched for (``detect_in_rect``).
        """
        ...


class MTCNNDetector:
    """MTCNN: facenet-pytorch's networks, with its wheel's weights or ours.

    On the CPU the cascade runs in worker/pipeline/cascade.py: facenet-pytorch's steps with
    faster resampling and channels-last tensors, the same boxes (tests/pipeline/
    test_detector_speedups.py). Elsewhere facenet-pytorch's ``MTCNN.detect`` runs, whose
    ``None`` or object arrays are turned into float32 ``Detections``. Neither raises on an
    empty or tiny frame.
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

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        # Batching gives MTCNN no gain on CPU and needs equal frame sizes: go frame by frame.
        return [self.detect_prepared(*self.prepare(frame)) for frame in frames]

    @property
    def uses_cascade(self) -> bool:
        """On the CPU the cascade of worker/pipeline/cascade.py runs; elsewhere facenet's own
        ``MTCNN.detect`` (the cascade's integral image is CPU code, and no GPU was at hand to
        measure one on)."""
        return self.device.type == "cpu"

    def detect_regions(self, frame: np.ndarray, rects: Sequence[Rect],
                       expected: Sequence[int] | None = None,
                       follow: Sequence[np.ndarray] | None = None) -> Detections:
        return detect_rects([self], frame, rects, expected, follow)

    def prepare_whole(self, frame: np.ndarray) -> PreparedFrame:
        """How the whole ``frame`` is read: its size, enlargement and whether it is grey."""
        height, width = frame.shape[:2]
        return PreparedFrame(width, height, self.config.scale_for(width, height),
                             is_monochrome(frame))

    def prepare(self, frame: np.ndarray, whole: PreparedFrame | None = None,
                ) -> tuple[PreparedFrame, np.ndarray | CascadeFrame | None]:
        """The frame as this detector's cascade reads it (enlarged if small); None if too small.

        ``whole``: ``frame`` is a crop of a frame read so: it is enlarged by that frame's
        factor and thresholded as that frame is (a crop of a colour frame may look grey).
        """
        height, width = frame.shape[:2]
        if whole is None:
            whole = self.prepare_whole(frame)
        scale = whole.scale
        prepared = PreparedFrame(width, height, scale, whole.monochrome)
        if scale != 1.0:
            frame = _resize(frame, scale)
        # MTCNN's image pyramid is empty for frames smaller than min_face_size (torch.cat crash).
        if min(frame.shape[:2]) < max(self.config.min_face_size, 12):
            return prepared, None
        if self.uses_cascade:
            return prepared, CascadeFrame(frame)
        return prepared, frame

    def detect_prepared(self, prepared: PreparedFrame,
                        frame: np.ndarray | CascadeFrame | None) -> Detections:
        if frame is None:
            return Detections.empty()
        mtcnn = self._mtcnn
        thresholds, face_threshold = self.config.thresholds_for(prepared.monochrome)
        with torch.inference_mode():
            if isinstance(frame, CascadeFrame):
                boxes, points = detect_faces(frame, mtcnn.pnet, mtcnn.rnet, mtcnn.onet,
                                             self.config.min_face_size, thresholds,
                                             mtcnn.factor)
                if len(boxes) == 0:
                    return Detections.empty()
                xyxy, probs = boxes[:, :4], boxes[:, 4]
            else:
                mtcnn.thresholds = list(thresholds)  # facenet's detect reads them from here
                xyxy, probs, points = mtcnn.detect(frame, landmarks=True)
                if xyxy is None:
                    return Detections.empty()
        return self._detections(prepared, xyxy, probs, points, face_threshold)

    def follow_prepared(self, prepared: PreparedFrame, frame: np.ndarray | CascadeFrame | None,
                        boxes: np.ndarray) -> Detections | None:
        """The faces this detector's RNet and ONet find around known ``boxes`` (N, 4) of a
        prepared frame (its pixels before enlargement): ``cascade.follow_faces``, no PNet
        pyramid. None where the frame is not read by the cascade (nothing followed)."""
        if not isinstance(frame, CascadeFrame):
            return None
        if len(boxes) == 0:
            return Detections.empty()
        mtcnn = self._mtcnn
        thresholds, face_threshold = self.config.thresholds_for(prepared.monochrome)
        with torch.inference_mode():
            found, points = follow_faces(frame, np.asarray(boxes, np.float32) * prepared.scale,
                                         mtcnn.rnet, mtcnn.onet, thresholds)
        if len(found) == 0:
            return Detections.empty()
        return self._detections(prepared, found[:, :4], found[:, 4], points, face_threshold)

    @staticmethod
    def _detections(prepared: PreparedFrame, xyxy: Any, probs: Any, points: Any,
                    face_threshold: float) -> Detections:
        width, height, scale = prepared.width, prepared.height, prepared.scale
        xyxy = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4) / scale
        confidence = np.asarray(probs, dtype=np.float32).reshape(-1)
        landmarks = np.asarray(points, dtype=np.float32).reshape(-1, 5, 2) / scale
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        sized = (xyxy[:, 2] - xyxy[:, 0] >= 2) & (xyxy[:, 3] - xyxy[:, 1] >= 2)
        keep = (confidence >= face_threshold) & sized
        return Detections(xyxy[keep], confidence[keep], landmarks[keep])


@dataclass(frozen=True)
class PreparedFrame:
    """A frame's original size, the factor it was enlarged by before detection, and whether
    it is monochrome (``is_monochrome``)."""

    width: int
    height: int
    scale: float
    monochrome: bool = False


MONO_TOLERANCE = 4  # channel difference still counted as grey (video's chroma rounding)
MONO_SHARE = 0.98  # share of grey pixels that makes a frame monochrome (overlays may be coloured)


def is_monochrome(frame: np.ndarray, step: int = 7) -> bool:
    """Whether an RGB frame is a grey picture: a night or infrared camera's, or a grey image.

    Reads every ``step``-th pixel each way. A frame is monochrome when nearly all of them
    (``MONO_SHARE``) have their three channels within ``MONO_TOLERANCE``: a decoded grey
    video has small chroma rounding, and a camera's coloured timestamp overlay must not make
    a night frame count as colour.
    """
    sample = np.asarray(frame[::step, ::step], np.int16).reshape(-1, 3)
    if len(sample) == 0:
        return False
    spread = sample.max(axis=1) - sample.min(axis=1)
    return bool(np.mean(spread <= MONO_TOLERANCE) >= MONO_SHARE)


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
        self._cascades = _shared_cascades(self.detectors)

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        if self._cascades:  # one enlarged frame, pyramid and first-stage answers for all
            answers = []
            for frame in frames:
                prepared, shared = self._cascades[0].prepare(frame)
                answers.append([d.detect_prepared(prepared, shared) for d in self._cascades])
            per_frames: Iterable[Sequence[Detections]] = answers
        else:
            per_frames = zip(*[detector.detect(frames) for detector in self.detectors],
                             strict=True)
        return [merge_detections(per_frame) for per_frame in per_frames]

    def detect_regions(self, frame: np.ndarray, rects: Sequence[Rect],
                       expected: Sequence[int] | None = None,
                       follow: Sequence[np.ndarray] | None = None) -> Detections:
        """As ``detect`` in the rectangles, each searched or followed as ``detect_in_rect``
        says: the detectors share each crop's cascade work."""
        if not self._cascades:
            return merge_detections([d.detect_regions(frame, rects)  # type: ignore[attr-defined]
                                     for d in self.detectors])
        return detect_rects(self._cascades, frame, rects, expected, follow)


#: A known face is found again by following when a followed box's centre lies within this
#: share of the known box's side of its centre (each way), one followed box per known face.
#: Candidates reach +-30 % of the side and RNet/ONet's regression moves them further: a
#: person walking across a 720p frame at 5 samples a second moves about 0.6 of a face's side.
FOLLOW_REACH = 1.0


def detect_rects(detectors: Sequence[MTCNNDetector], frame: np.ndarray, rects: Sequence[Rect],
                 expected: Sequence[int] | None = None,
                 follow: Sequence[np.ndarray] | None = None) -> Detections:
    """The faces in the rectangles of ``frame`` (frame pixels): ``detect_in_rect`` on each
    crop, read as the whole frame is (enlargement, grey thresholds)."""
    first = detectors[0]
    whole = first.prepare_whole(frame)
    found = []
    for i, rect in enumerate(rects):
        prepared, shared = first.prepare(frame[rect[1]:rect[3], rect[0]:rect[2]], whole)
        known = None
        if follow is not None and len(follow[i]):
            known = np.asarray(follow[i], np.float32)[:, :4] - np.tile(
                np.array(rect[:2], np.float32), 2)
        found.append(detect_in_rect(detectors, prepared, shared, None if expected is None
                                    else expected[i], known))
    return merge_detections(shifted(found, rects))


def detect_in_rect(detectors: Sequence[MTCNNDetector], prepared: PreparedFrame,
                   crop: np.ndarray | CascadeFrame | None, expected: int | None = None,
                   known: np.ndarray | None = None) -> Detections:
    """One rectangle's faces (the crop's pixels), found by the detectors in turn.

    ``known``: the faces the rectangle held in the last frame (crop pixels), to follow: each
    detector's RNet and ONet on candidates around them (``follow_prepared``), in turn until
    every known face is found again (``found_again``); then those are the rectangle's faces,
    and no PNet pyramid runs. Where following loses a face, or ``known`` is None, the
    rectangle is searched: the first detector, then the others unless it found again every
    face the rectangle held (``expected``, at least one): they are there to add the faces
    the first misses (masked ones), and none is missing. A rectangle with no face expected
    (someone new) gets every detector.
    """
    if known is not None and len(known):
        answers: list[Detections] = []
        for detector in detectors:
            followed = detector.follow_prepared(prepared, crop, known)
            if followed is None:
                break
            answers.append(followed)
            merged = merge_detections(answers, always=True)
            if found_again(known, merged.xyxy).all():
                return merged
    answers = [detectors[0].detect_prepared(prepared, crop)]
    if expected is None or not 0 < expected <= len(answers[0]):
        answers += [d.detect_prepared(prepared, crop) for d in detectors[1:]]
    return merge_detections(answers)


def found_again(known: np.ndarray, boxes: np.ndarray, reach: float = FOLLOW_REACH) -> np.ndarray:
    """(N,) bool: which known boxes a distinct one of ``boxes`` is near (``FOLLOW_REACH``),
    matched nearest first."""
    known, boxes = np.asarray(known, np.float64)[:, :4], np.asarray(boxes, np.float64)[:, :4]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    found = np.zeros(len(known), bool)
    pairs = []
    for i, (x1, y1, x2, y2) in enumerate(known):
        side = max(x2 - x1, y2 - y1, 1.0)
        away = np.abs(centres - ((x1 + x2) / 2, (y1 + y2) / 2)).max(axis=1) / side
        pairs += [(float(d), i, j) for j, d in enumerate(away) if d <= reach]
    taken: set[int] = set()
    for _, i, j in sorted(pairs):
        if not found[i] and j not in taken:
            found[i] = True
            taken.add(j)
    return found


def merge_detections(parts: Sequence[Detections], always: bool = False) -> Detections:
    """One frame's detections from several searches; where boxes overlap (IoU >=
    MERGE_IOU), the more confident one is kept (within one part too when ``always``)."""
    from torchvision.ops import nms

    if len(parts) == 1 and not always:
        return parts[0]
    if not parts:
        return Detections.empty()
    both = Detections.concat(parts)
    keep = nms(torch.from_numpy(both.xyxy), torch.from_numpy(both.confidence), MERGE_IOU)
    return both.select(keep.numpy())


def shifted(found: Sequence[Detections], rects: Sequence[Rect]) -> list[Detections]:
    """Detections in crops moved back to the frame's pixels."""
    out = []
    for detections, (x1, y1, _, _) in zip(found, rects, strict=True):
        offset = np.array([x1, y1], np.float32)
        out.append(Detections(detections.xyxy + np.tile(offset, 2), detections.confidence,
                              detections.landmarks + offset))
    return out


def _shared_cascades(detectors: Sequence[FaceDetector]) -> list[MTCNNDetector]:
    """The detectors again if they can share each frame's cascade work, else [].

    They can when all are CPU cascades with the same settings apart from their weights (so
    the same enlarged frame and pyramid); first-stage networks with equal weights are then
    made one module, so that a frame's answer from it is computed once (the stock PNet is in
    both shipped detectors).
    """
    if not detectors or not all(isinstance(d, MTCNNDetector) and d.uses_cascade
                                for d in detectors):
        return []
    cascades = [d for d in detectors if isinstance(d, MTCNNDetector)]
    settings = {replace(d.config, detector_weights=None) for d in cascades}
    if len(settings) != 1:
        return []
    seen: list[torch.nn.Module] = []

    def one_of_equal(net: torch.nn.Module) -> torch.nn.Module:
        for other in seen:
            if _same_weights(net, other):
                return other
        seen.append(net)
        return net

    for detector in cascades:
        first, second = split_stage(detector._mtcnn.pnet)
        if second is None:
            detector._mtcnn.pnet = one_of_equal(first)
        else:
            detector._mtcnn.pnet.first = one_of_equal(first)
            detector._mtcnn.pnet.second = one_of_equal(second)
    return cascades


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    state_a, state_b = a.state_dict(), b.state_dict()
    return (type(a) is type(b) and state_a.keys() == state_b.keys()
            and all(torch.equal(state_a[k], state_b[k]) for k in state_a))


def build_detector(config: DetectorConfig, device: torch.device) -> FaceDetector:
    """The detector a config names: one MTCNN, or a MergedDetector for ``a.pt+b.pt``."""
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
