"""Drawing verdicts onto frames for people to check (green masked, red unmasked)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from maskwatch.core.labels import Label
from maskwatch.core.records import FaceRecord

COLOURS: dict[str, tuple[int, int, int]] = {
    Label.WITH_MASK: (0, 200, 0), Label.INCORRECT_MASK: (255, 160, 0)
}
UNMASKED_COLOUR = (230, 0, 0)


def annotate(image: np.ndarray, faces: list[FaceRecord]) -> Image.Image:
    """A copy of ``image`` (H, W, 3 RGB) with each face's box and label drawn."""
    canvas = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 400))
    for face in faces:
        colour = COLOURS.get(face.label, UNMASKED_COLOUR)
        draw.rectangle((face.x1, face.y1, face.x2, face.y2), outline=colour, width=width)
        text = f"{face.label} {face.score:.2f}"
        top = max(0.0, face.y1 - 12)
        draw.rectangle(draw.textbbox((face.x1, top), text), fill=colour)
        draw.text((face.x1, top), text, fill=(255, 255, 255))
    return canvas
