"""Single images in, faces with verdicts out: the synchronous "classify this picture" path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskwatch.core.analysis import AnalysisSettings
from maskwatch.core.records import FrameRecord
from worker.pipeline.analyze import Models, analyze_frames
from worker.pipeline.config import check_analysable
from worker.pipeline.decode import iter_frames, output_size, probe
from worker.pipeline.errors import InputError


@dataclass(frozen=True)
class ImageResult:
    record: FrameRecord
    image: np.ndarray  # (H, W, 3) uint8 RGB as decoded (possibly scaled by max_frame_side)
    box_scale: float  # source pixels per decoded pixel


def classify_image(path: Path, models: Models, settings: AnalysisSettings) -> ImageResult:
    """Detect and classify every face of one image; boxes are in the image's own pixels."""
    info = probe(path)
    if info.kind != "image":
        raise InputError(f"{path.name}: is a video, not an image (use `maskwatch analyze`)")
    check_analysable(info, settings)
    width, _ = output_size(info, settings.max_frame_side)
    box_scale = info.width / width
    frame = next(iter(iter_frames(info, sample_fps=None, max_side=settings.max_frame_side)))
    record = next(analyze_frames([frame], models, box_scale))
    return ImageResult(record=record, image=frame.image, box_scale=box_scale)


def face_json(record: FrameRecord) -> list[dict[str, object]]:
    """The stable per-face JSON of `maskwatch classify --json` and `POST /v1/classify`."""
    return [
        {"box": [f.x1, f.y1, f.x2, f.y2], "label": f.label, "score": f.score}
        for f in record.detections
    ]
