"""Evidence stills: one analysed frame of the footage, its faces boxed and labelled, and
(privacy on) each face blurred so that the picture proves the verdict without showing who."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from maskwatch.core.records import FaceRecord
from worker.pipeline.annotate import COLOURS, UNMASKED_COLOUR, annotate
from worker.pipeline.decode import MediaInfo, iter_frames
from worker.pipeline.errors import DecodeError

DECODE_TIMEOUT_S = 30.0
JPEG_QUALITY = 85
# Blurred beyond each face box, as shares of its width (sides) and height (above, below):
# hair, eyes and chin identify a person as well as the face does, and a masked face's box
# often starts at the eyes or the nose (seen in the dashboard's stills with 0.15 all round).
BLUR_PAD_SIDE = 0.35
BLUR_PAD_ABOVE = 0.8
BLUR_PAD_BELOW = 0.3


class FrameNotFound(LookupError):
    """The footage has no frame at that index (it changed, or the index is wrong)."""


def blur_faces(image: np.ndarray, faces: list[FaceRecord]) -> np.ndarray:
    """A copy of ``image`` (H, W, 3 RGB) with every face box (padded) blurred beyond recognition."""
    canvas = Image.fromarray(image).convert("RGB")
    width, height = canvas.size
    for face in faces:
        pad_x = (face.x2 - face.x1) * BLUR_PAD_SIDE
        face_height = face.y2 - face.y1
        box = (
            max(0, int(face.x1 - pad_x)),
            max(0, int(face.y1 - face_height * BLUR_PAD_ABOVE)),
            min(width, int(face.x2 + pad_x + 1)),
            min(height, int(face.y2 + face_height * BLUR_PAD_BELOW + 1)),
        )
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        region = canvas.crop(box)
        radius = max(4.0, max(region.size) / 6)
        canvas.paste(region.filter(ImageFilter.GaussianBlur(radius)), box[:2])
    return np.asarray(canvas)


def mark_tracks(picture: Image.Image, faces: list[FaceRecord]) -> Image.Image:
    """``picture`` (annotated) with each tracked face's person number, ``#N``, under its box.

    Drawn under the box, not in the label above it, so that the verdict stays where
    ``annotate`` puts it; a face's ``track_key`` is the number drawn (None: nothing).
    """
    draw = ImageDraw.Draw(picture)
    for face in faces:
        if face.track_key is None:
            continue
        text = f"#{face.track_key}"
        top = min(float(picture.size[1] - 12), face.y2 + 2)
        colour = COLOURS.get(face.label, UNMASKED_COLOUR)
        draw.rectangle(draw.textbbox((face.x1, top), text), fill=colour)
        draw.text((face.x1, top), text, fill=(255, 255, 255))
    return picture


def annotated(image: np.ndarray, faces: list[FaceRecord]) -> Image.Image:
    """``image`` with its faces boxed and labelled (``annotate``) and numbered by person."""
    return mark_tracks(annotate(image, faces), faces)


def read_frame(info: MediaInfo, frame_index: int, timestamp_s: float) -> np.ndarray:
    """The decoded frame ``frame_index`` (at ``timestamp_s``) of the footage, full size.

    Raises:
        FrameNotFound: no such frame around that time.
        DecodeError, TimeoutError: as ``iter_frames``.
    """
    if info.kind == "image":
        start_s, end_s = 0.0, None
    else:
        step = 1.0 / (info.fps or 25.0)
        start_s, end_s = max(0.0, timestamp_s - step), timestamp_s + 2 * step
    frames = iter_frames(
        info, sample_fps=None, start_s=start_s, end_s=end_s, timeout_s=DECODE_TIMEOUT_S
    )
    try:
        for frame in frames:
            if frame.frame_index == frame_index or info.kind == "image":
                return frame.image
    finally:
        frames.close()
    raise FrameNotFound(f"no frame {frame_index} at {timestamp_s:.2f} s in {info.path.name}")


def evidence_still(
    info: MediaInfo,
    frame_index: int,
    timestamp_s: float,
    faces: list[FaceRecord],
    *,
    blur: bool,
) -> bytes:
    """The frame as a JPEG with its faces boxed, labelled and numbered by person, blurred
    first when ``blur``.

    Raises:
        FrameNotFound, DecodeError, TimeoutError: the frame cannot be read.
    """
    image = read_frame(info, frame_index, timestamp_s)
    if blur:
        image = blur_faces(image, faces)
    out = io.BytesIO()
    annotated(image, faces).save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


__all__ = [
    "DecodeError", "FrameNotFound", "annotated", "blur_faces", "evidence_still", "mark_tracks",
    "read_frame",
]
