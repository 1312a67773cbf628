"""Pascal VOC scene annotations: parsing, split files and the scene list to evaluate."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskwatch.core.labels import Label

logger = logging.getLogger(__name__)

# The Kaggle "Face Mask Detection" VOC names, mapped to our labels.
VOC_CLASSES: dict[str, str] = {
    "with_mask": Label.WITH_MASK,
    "without_mask": Label.WITHOUT_MASK,
    "mask_weared_incorrect": Label.INCORRECT_MASK,
    "incorrect_mask": Label.INCORRECT_MASK,
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class Scene:
    """One annotated image; boxes are in the image's pixels as written in the XML."""

    scene_id: str  # the annotation file's stem
    image_path: Path
    size_wh: tuple[int, int]
    xyxy: np.ndarray  # (N, 4) float32
    labels: tuple[str, ...]  # (N,) our labels
    difficult: np.ndarray  # (N,) bool: VOC "difficult", ignored by the metrics

    @property
    def face_count(self) -> int:
        return len(self.labels)


def parse_voc(xml_path: Path, images_dir: Path) -> Scene:
    """Read one VOC annotation; unknown class names raise ValueError."""
    root = ET.parse(xml_path).getroot()
    boxes: list[list[float]] = []
    labels: list[str] = []
    difficult: list[bool] = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in VOC_CLASSES:
            raise ValueError(f"{xml_path.name}: unknown class {name!r}")
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"{xml_path.name}: object {name!r} has no bndbox")
        boxes.append([float(box.findtext(k) or "nan") for k in ("xmin", "ymin", "xmax", "ymax")])
        labels.append(VOC_CLASSES[name])
        difficult.append((obj.findtext("difficult") or "0").strip() == "1")
    width = int(float(root.findtext("size/width") or 0))
    height = int(float(root.findtext("size/height") or 0))
    return Scene(
        scene_id=xml_path.stem,
        image_path=_image_for(xml_path, root.findtext("filename"), images_dir),
        size_wh=(width, height),
        xyxy=np.asarray(boxes, np.float32).reshape(-1, 4),
        labels=tuple(labels),
        difficult=np.asarray(difficult, bool),
    )


def _image_for(xml_path: Path, filename: str | None, images_dir: Path) -> Path:
    candidates = [images_dir / filename.strip()] if filename and filename.strip() else []
    candidates += [images_dir / f"{xml_path.stem}{suffix}" for suffix in IMAGE_SUFFIXES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{xml_path.name}: no image for it in {images_dir}")


def read_split(path: Path) -> list[str]:
    """Scene ids listed one per line (file names or stems; blank lines and # comments skipped)."""
    ids = []
    for line in path.read_text().splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            ids.append(Path(entry).stem)
    return ids


def tail_split(scene_ids: Iterable[str], fraction: float = 0.2) -> list[str]:
    """The last ``fraction`` of the sorted ids: a stand-in hold-out when no split file exists."""
    ordered = sorted(scene_ids)
    count = round(len(ordered) * fraction)
    return ordered[len(ordered) - count :] if count else []


def load_scenes(
    annotations_dir: Path,
    images_dir: Path,
    scene_ids: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[Scene]:
    """Parse the annotations (all, or the listed ids) in sorted id order, at most ``limit``."""
    available = {p.stem: p for p in annotations_dir.glob("*.xml")}
    if scene_ids is None:
        chosen = sorted(available)
    else:
        missing = sorted(set(scene_ids) - set(available))
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} scene(s) of the split have no annotation in {annotations_dir}, "
                f"e.g. {missing[0]}"
            )
        chosen = sorted(set(scene_ids))
    if limit is not None:
        chosen = chosen[:limit]
    scenes = [parse_voc(available[scene_id], images_dir) for scene_id in chosen]
    logger.info("loaded %d scene(s) from %s", len(scenes), annotations_dir)
    return scenes
