"""Build train/val face-crop folders from ../shared so training crops look like inference crops."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from maskwatch.core.analysis import FAST_DETECTOR_WEIGHTS
from maskwatch.core.labels import CLASS_NOT_FACE, Label
from ml.data.crops import cut_crop, face_signature, mirrored_signature
from ml.data.folders import CROP_CLASSES, load_rgb
from ml.data.scenes import Scene, load_scenes
from ml.metrics import box_iou
from ml.training.detections import DetectionCache, detector_identity
from ml.training.grouping import (
    TRAIN_ONLY,
    duplicate_pairs,
    group_key,
    merge_groups,
    split_groups,
    stable_order,
)
from worker.pipeline.classify import CropPreset
from worker.pipeline.detect import DetectorConfig, FaceDetector
from worker.pipeline.types import Detections

logger = logging.getLogger(__name__)

DATASETS = "datasets"
PHOTO_SOURCES = {"chandrikadeb7": "chandrikadeb7-faces", "prajnasb": "prajnasb-faces"}
KAGGLE = "kaggle"
KAGGLE_DETECTED = "kaggle_detected"  # kaggle scenes cut where our detector finds faces
KAGGLE_DIR = "kaggle-scenes-dev"
SOURCES = ("chandrikadeb7", "prajnasb", KAGGLE, KAGGLE_DETECTED)
SPLITS = ("train", "val")
DEFAULT_SPLITS_DIR = Path(__file__).parent / "splits"
# Stock MTCNN thresholds miss many masked faces; these find them at a few more false boxes.
# The detector weights are the ones the shipped classifier's crops were cut with (pinned, so
# that a change of the shipped default does not silently change the training data).
# Monochrome frames get no thresholds of their own here: the crops stay as they were cut.
PREPARE_DETECTOR = DetectorConfig(min_face_size=20, thresholds=(0.5, 0.6, 0.6),
                                  face_threshold=0.8, detector_weights=FAST_DETECTOR_WEIGHTS,
                                  mono_thresholds=None, mono_face_threshold=None)


# The shipped detector, looser than its defaults: it also finds what a lower operating
# threshold lets through, so that the classifier learns to reject those boxes (not_face).
DETECTED_CROPS_DETECTOR = DetectorConfig(min_face_size=20, thresholds=(0.6, 0.7, 0.7),
                                         face_threshold=0.5,
                                         detector_weights=FAST_DETECTOR_WEIGHTS,
                                         mono_thresholds=None, mono_face_threshold=None)
FACE_IOU = 0.5  # a detection this close to a GT face takes its class
NOT_FACE_IOU = 0.3  # a detection under this with every GT face (and its square) is not_face


@dataclass(frozen=True)
class PrepareConfig:
    """How crops are cut and split."""

    val_fraction: float = 0.2
    seed: int = 0
    margin: float = CropPreset().margin
    detector: DetectorConfig = PREPARE_DETECTOR
    scene_detector: DetectorConfig = DETECTED_CROPS_DETECTOR  # kaggle_detected only
    comparable_face_ratio: float = 0.5  # a 2nd face this big (side vs the largest) = ambiguous
    min_box_px: float = 8.0  # kaggle boxes smaller than this (longer side) are skipped
    duplicate_similarity: float = 0.8  # face_signature correlation meaning "same picture"
    jpeg_quality: int = 95


@dataclass
class FaceSample:
    """One face crop waiting for its split."""

    source: str
    class_name: str
    name: str  # output file stem
    group: str
    crop: np.ndarray  # (S, S, 3) uint8
    signature: np.ndarray | None = None  # for duplicate matching (photo sets)


@dataclass(frozen=True)
class BoxJitter:
    """How MTCNN boxes differ from kaggle ground truth, as offsets relative to the GT box.

    ``mean``/``std`` are over (centre dx / w, centre dy / h, log(w' / w), log(h' / h)).
    """

    mean: tuple[float, float, float, float]
    std: tuple[float, float, float, float]
    pairs: int

    def apply(self, xyxy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A detector-like box for a GT box (4,): the mean offset plus Gaussian spread."""
        dx, dy, dw, dh = rng.normal(self.mean, self.std)
        width, height = xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]
        cx = (xyxy[0] + xyxy[2]) / 2 + dx * width
        cy = (xyxy[1] + xyxy[3]) / 2 + dy * height
        width, height = width * np.exp(dw), height * np.exp(dh)
        return np.array([cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2],
                        np.float32)


def pick_face(found: Detections, comparable_ratio: float) -> tuple[int | None, str]:
    """The index of the one face an image's label refers to, or None and why not."""
    if len(found) == 0:
        return None, "no_face"
    sides = np.maximum(found.xyxy[:, 2] - found.xyxy[:, 0], found.xyxy[:, 3] - found.xyxy[:, 1])
    order = np.argsort(-sides)
    if len(order) > 1 and sides[order[1]] >= comparable_ratio * sides[order[0]]:
        return None, "ambiguous"
    return int(order[0]), ""


def photo_faces(root: Path, source: str, cache: DetectionCache, config: PrepareConfig,
                skipped: Counter[tuple[str, str, str]],
                on_item: Callable[[], None] | None = None) -> list[FaceSample]:
    """Detect the face of every image of a photo set and cut it like inference does."""
    samples = []
    for class_name in (Label.WITH_MASK, Label.WITHOUT_MASK):
        for path in sorted((root / PHOTO_SOURCES[source] / class_name).glob("*.jpg")):
            image: np.ndarray | None = None

            def load(p: Path = path) -> np.ndarray:
                nonlocal image
                image = load_rgb(p)
                return image

            found = cache.detect(str(path.relative_to(root)), load)
            index, reason = pick_face(found, config.comparable_face_ratio)
            if on_item is not None:
                on_item()
            if index is None:
                skipped[(source, class_name, reason)] += 1
                continue
            rgb = image if image is not None else load_rgb(path)
            samples.append(FaceSample(
                source=source, class_name=class_name, name=path.stem,
                group=group_key(source, path.stem),
                crop=cut_crop(rgb, found.xyxy[index], config.margin),
                signature=face_signature(rgb, found.landmarks[index])))
    return samples


def link_duplicates(samples: Sequence[FaceSample], threshold: float) -> int:
    """Merge the groups of faces that are copies of one picture (flips, rotations, re-saves).

    Returns:
        The number of linked pairs.
    """
    if not samples:
        return 0
    signatures = np.stack([s.signature for s in samples if s.signature is not None])
    flipped = np.stack([mirrored_signature(s) for s in signatures])
    pairs = duplicate_pairs(signatures, threshold, flipped)
    for sample, group in zip(samples, merge_groups([s.group for s in samples], pairs),
                             strict=True):
        sample.group = group
    return len(pairs)


def split_photo_samples(samples: Sequence[FaceSample], config: PrepareConfig) -> set[str]:
    """Validation group keys for one photo set, stratified by the groups' class."""
    sizes: Counter[str] = Counter(s.group for s in samples)
    classes: dict[str, set[str]] = defaultdict(set)
    for sample in samples:
        classes[sample.group].add(sample.class_name)
    strata = {g: next(iter(c)) if len(c) == 1 else "mixed" for g, c in classes.items()}
    return split_groups(sizes, strata, config.val_fraction, config.seed)


def read_scenes(root: Path) -> list[Scene]:
    """Kaggle scenes with their Pascal VOC boxes, in scene-id order (the lab's one VOC reader,
    ml.data.scenes). Boxes marked ``difficult`` are kept as faces here, while the scene metrics
    ignore them: a difficult face is still a face, and a crop of it left out of training
    would come back as a ``not_face`` negative from the detected-crop source."""
    scenes_dir = root / KAGGLE_DIR
    return load_scenes(scenes_dir / "annotations", scenes_dir / "images")


def split_scenes(scenes: Sequence[Scene], config: PrepareConfig) -> set[str]:
    """Validation scene ids: about ``val_fraction`` of the faces, scenes with an incorrectly
    worn mask stratified apart so the rare class reaches validation."""
    sizes = {s.scene_id: max(len(s.labels), 1) for s in scenes}
    strata = {s.scene_id: "incorrect" if Label.INCORRECT_MASK in s.labels else "other"
              for s in scenes}
    return split_groups(sizes, strata, config.val_fraction, config.seed)


def kaggle_val_scenes(scenes: Sequence[Scene], config: PrepareConfig, splits_dir: Path,
                      write_splits: bool) -> tuple[set[str], str]:
    """The validation scenes: the committed lists when present (they define the held-out
    scenes of the pipeline evaluation), else a fresh stratified split that is then written."""
    train_file, val_file = (splits_dir / f"kaggle_scenes_{s}.txt" for s in SPLITS)
    ids = {s.scene_id for s in scenes}
    if train_file.is_file() and val_file.is_file() and not write_splits:
        listed_train = set(train_file.read_text().split())
        listed_val = set(val_file.read_text().split())
        val = ids & listed_val
        unlisted = ids - listed_train - listed_val
        if unlisted:
            # Stable per-scene rule, so a committed list is never reshuffled by new scenes.
            extra = set(stable_order(sorted(unlisted), config.seed)
                        [: round(config.val_fraction * len(unlisted))])
            logger.warning("%d kaggle scenes are in neither split list; %d go to val",
                           len(unlisted), len(extra))
            val |= extra
        return val, "committed lists"
    val = split_scenes(scenes, config)
    splits_dir.mkdir(parents=True, exist_ok=True)
    val_file.write_text("".join(f"{s}\n" for s in sorted(val)))
    train_file.write_text("".join(f"{s}\n" for s in sorted(ids - val)))
    return val, "computed and written"


def scene_detections(root: Path, scenes: Sequence[Scene], cache: DetectionCache,
                     on_item: Callable[[], None] | None = None
                     ) -> Iterator[tuple[Scene, Detections]]:
    """Each scene with the detector's boxes in it (from ``cache``); ``on_item`` after each."""
    for scene in scenes:
        found = cache.detect(str(scene.image_path.relative_to(root)),
                             partial(load_rgb, scene.image_path))
        if on_item is not None:
            on_item()
        yield scene, found


def measure_box_jitter(root: Path, scenes: Sequence[Scene], cache: DetectionCache,
                       min_iou: float = 0.4,
                       on_item: Callable[[], None] | None = None) -> BoxJitter:
    """Offsets of matched MTCNN boxes from ground truth (best IoU >= min_iou per GT box)."""
    offsets = []
    for scene, found in scene_detections(root, scenes, cache, on_item):
        if not len(found) or not len(scene.labels):
            continue
        iou = box_iou(scene.xyxy, found.xyxy)
        for g, gt in enumerate(scene.xyxy):
            d = int(iou[g].argmax())
            if iou[g, d] < min_iou:
                continue
            det = found.xyxy[d]
            width, height = gt[2] - gt[0], gt[3] - gt[1]
            offsets.append([((det[0] + det[2]) - (gt[0] + gt[2])) / 2 / width,
                            ((det[1] + det[3]) - (gt[1] + gt[3])) / 2 / height,
                            np.log((det[2] - det[0]) / width), np.log((det[3] - det[1]) / height)])
    if not offsets:
        return BoxJitter((0.0, 0.0, 0.0, 0.0), (0.05, 0.05, 0.1, 0.1), 0)
    array = np.asarray(offsets, np.float64)
    mean = tuple(float(v) for v in array.mean(axis=0))
    std = tuple(float(v) for v in array.std(axis=0))
    return BoxJitter(mean, std, len(array))  # type: ignore[arg-type]


def kaggle_faces(scenes: Sequence[Scene], jitter: BoxJitter,
                 config: PrepareConfig, skipped: Counter[tuple[str, str, str]]
                 ) -> list[FaceSample]:
    """Crops of every ground-truth face, cut around a detector-like jittered box."""
    samples = []
    for scene in scenes:
        image = load_rgb(scene.image_path)
        # One generator per scene: a crop does not change when other scenes do.
        rng = np.random.default_rng([config.seed, int.from_bytes(scene.scene_id.encode()[-8:])])
        for k, (box, class_name) in enumerate(zip(scene.xyxy, scene.labels, strict=True)):
            if max(box[2] - box[0], box[3] - box[1]) < config.min_box_px:
                skipped[(KAGGLE, class_name, "too_small")] += 1
                continue
            samples.append(FaceSample(
                source=KAGGLE, class_name=class_name, name=f"kg_{scene.scene_id}_{k:02d}",
                group=scene.scene_id,
                crop=cut_crop(image, jitter.apply(box, rng), config.margin)))
    return samples


def detected_faces(root: Path, scenes: Sequence[Scene], cache: DetectionCache,
                   config: PrepareConfig, skipped: Counter[tuple[str, str, str]],
                   on_item: Callable[[], None] | None = None) -> list[FaceSample]:
    """Crops of the boxes our detector finds in each scene, labelled by the ground truth.

    These are the crops inference classifies: the detector's own boxes, misplaced or not.
    A box whose best IoU with a GT face is >= 0.5 takes that face's class. A box under 0.3
    with every GT face and with its square (so no face part) is ``not_face``: what the
    detector lets through that a classifier with that class can veto. Boxes in between
    are skipped as ambiguous.
    """
    samples = []
    for scene, found in scene_detections(root, scenes, cache, on_item):
        if not len(found):
            continue
        image = load_rgb(scene.image_path)
        for k, (box, class_name) in enumerate(
            zip(found.xyxy, detection_classes(found.xyxy, scene.xyxy, scene.labels),
                strict=True)
        ):
            if class_name is None:
                skipped[(KAGGLE_DETECTED, "any", "iou_0.3_0.5")] += 1
                continue
            samples.append(FaceSample(
                source=KAGGLE_DETECTED, class_name=class_name,
                name=f"kd_{scene.scene_id}_{k:02d}", group=scene.scene_id,
                crop=cut_crop(image, box, config.margin)))
    return samples


def detection_classes(found: np.ndarray, gt: np.ndarray, gt_classes: Sequence[str]
                      ) -> list[str | None]:
    """The training class of each detected box (N, 4) given the GT boxes (M, 4) of its image.

    IoU >= FACE_IOU with a GT box: that box's class (the best one). Under NOT_FACE_IOU with
    every GT box and with every GT box's square: ``not_face``. Otherwise None (ambiguous).
    """
    from ml.training.detector import square

    found = np.asarray(found, np.float32).reshape(-1, 4)
    if len(gt) == 0:
        return [CLASS_NOT_FACE] * len(found)
    iou = box_iou(found, gt)
    near = np.maximum(iou, box_iou(found, square(gt)))
    classes: list[str | None] = []
    for k in range(len(found)):
        if iou[k].max() >= FACE_IOU:
            classes.append(gt_classes[int(iou[k].argmax())])
        elif near[k].max() < NOT_FACE_IOU:
            classes.append(CLASS_NOT_FACE)
        else:
            classes.append(None)
    return classes


def write_crops(samples: Sequence[FaceSample], val_groups: set[str], out_dir: Path,
                quality: int) -> Counter[tuple[str, str, str]]:
    """Save each crop as out_dir/<split>/<class>/<name>.jpg; counts by (source, class, split)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for sample in samples:
        split = "val" if sample.group in val_groups and sample.group != TRAIN_ONLY else "train"
        path = out_dir / split / sample.class_name / f"{sample.name}.jpg"
        Image.fromarray(sample.crop).save(path, quality=quality)
        counts[(sample.source, sample.class_name, split)] += 1
    return counts


def clear_crop_dirs(out_dir: Path) -> None:
    """Empty (or create) the split/class folders this module writes, and nothing else."""
    for split in SPLITS:
        for class_name in CROP_CLASSES:
            class_dir = out_dir / split / class_name
            if class_dir.is_dir():
                shutil.rmtree(class_dir)
            class_dir.mkdir(parents=True)


def prepare(
    shared_dir: Path,
    out_dir: Path,
    config: PrepareConfig,
    make_detector: Callable[[DetectorConfig], FaceDetector],
    sources: Sequence[str] = SOURCES,
    cache_dir: Path = Path("var/cache"),
    splits_dir: Path = DEFAULT_SPLITS_DIR,
    write_splits: bool = False,
    on_item: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Build ``out_dir/{train,val}/<class>/*.jpg`` and ``out_dir/manifest.json``.

    Returns:
        The manifest: config, counts per source/class/split, skips, groups, kaggle split info.
    """
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown sources {sorted(unknown)}; known: {list(SOURCES)}")
    root = shared_dir / DATASETS
    cache = DetectionCache(cache_dir, config.detector, make_detector)
    skipped: Counter[tuple[str, str, str]] = Counter()
    samples: list[FaceSample] = []
    val_groups: set[str] = set()
    groups_info: dict[str, dict[str, int]] = {}
    manifest: dict[str, Any] = {"config": asdict(config), "sources": list(sources)}
    try:
        for source in (s for s in SOURCES if s in sources and s in PHOTO_SOURCES):
            found = photo_faces(root, source, cache, config, skipped, on_item)
            links = link_duplicates(found, config.duplicate_similarity)
            val = split_photo_samples(found, config)
            groups = {s.group for s in found}
            groups_info[source] = {
                "groups": len(groups - {TRAIN_ONLY}), "val_groups": len(val),
                "train_only_faces": sum(s.group == TRAIN_ONLY for s in found),
                "duplicate_links": links}
            samples.extend(found)
            val_groups |= val
        if KAGGLE_DETECTED in sources:
            scenes = read_scenes(root)
            val_scenes, origin = kaggle_val_scenes(scenes, config, splits_dir, write_splits)
            scene_cache = DetectionCache(cache_dir, config.scene_detector, make_detector)
            try:
                samples.extend(detected_faces(root, scenes, scene_cache, config, skipped,
                                              on_item))
            finally:
                scene_cache.save()
            val_groups |= val_scenes
            manifest[KAGGLE_DETECTED] = {"split": origin,
                                         "detector": detector_identity(config.scene_detector)}
        if KAGGLE in sources:
            scenes = read_scenes(root)
            val_scenes, origin = kaggle_val_scenes(scenes, config, splits_dir, write_splits)
            jitter = measure_box_jitter(root, [s for s in scenes if s.scene_id not in val_scenes],
                                        cache, on_item=on_item)
            samples.extend(kaggle_faces(scenes, jitter, config, skipped))
            val_groups |= val_scenes
            manifest["kaggle"] = {"split": origin, "box_jitter": asdict(jitter),
                                  "scenes": {"train": len(scenes) - len(val_scenes),
                                             "val": len(val_scenes)}}
    finally:
        cache.save()
    clear_crop_dirs(out_dir)
    counts = write_crops(samples, val_groups, out_dir, config.jpeg_quality)
    manifest["groups"] = groups_info
    manifest["counts"] = _nest(counts)
    manifest["skipped"] = _nest(skipped)
    manifest["totals"] = {split: sum(n for (_, _, s), n in counts.items() if s == split)
                          for split in SPLITS}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _nest(counts: Counter[tuple[str, str, str]]) -> dict[str, dict[str, dict[str, int]]]:
    nested: dict[str, dict[str, dict[str, int]]] = {}
    for (a, b, c), n in sorted(counts.items()):
        nested.setdefault(a, {}).setdefault(b, {})[c] = n
    return nested
