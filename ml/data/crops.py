"""Face crops on disk and their conversion to network input through the inference path."""

from __future__ import annotations

import numpy as np
import torch

from worker.pipeline.classify import CropPreset, crop_faces, square_boxes

MAX_CROP_SIDE = 128  # px; larger faces are saved downscaled, smaller ones at native size


def cut_crop(image: np.ndarray, xyxy: np.ndarray, margin: float,
             max_side: int = MAX_CROP_SIDE) -> np.ndarray:
    """Cut one face box as inference does (square, ``margin`` per side) into a uint8 crop.

    The crop keeps the face's native resolution (side = the square box's side, rounded),
    capped at ``max_side``. Parts of the square outside the image are filled by reflecting
    the image rather than with black: many source photos are tight face crops, and black
    borders there would give the network a label shortcut that CCTV frames do not have.

    Args:
        image: (H, W, 3) uint8 RGB.
        xyxy: (4,) face box in ``image`` pixels.
        margin: the preset margin.
        max_side: largest side of the saved crop in pixels.

    Returns:
        (S, S, 3) uint8, S = min(round(square side), max_side), at least 4.
    """
    box = square_boxes(np.asarray(xyxy, np.float32).reshape(1, 4), margin)[0]
    height, width = image.shape[:2]
    pad = int(np.ceil(max(0.0, -box[0], -box[1], box[2] - width, box[3] - height))) + 1
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect") if pad > 1 else image
    shift = pad if pad > 1 else 0
    side = int(min(max(round(float(box[2] - box[0])), 4), max_side))
    # crop_faces re-applies the margin, so hand it the face box (inner square) shifted into
    # the padded image; roi_align averages samples, i.e. an antialiased downscale.
    inner = inner_box(float(box[2] - box[0]), margin) + np.array(
        [box[0] + shift, box[1] + shift] * 2, np.float32)
    preset = CropPreset(size=side, margin=margin)
    batch = crop_faces(torch.from_numpy(np.ascontiguousarray(padded)), inner[None], preset)
    return batch[0].round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def inner_box(side: float, margin: float) -> np.ndarray:
    """The face box (4,) whose square-with-margin is the square [0, side] x [0, side]."""
    face = side / (1 + 2 * margin)
    start = (side - face) / 2
    return np.array([start, start, start + face, start + face], np.float32)


def face_size_px(crop_side: int, margin: float) -> float:
    """The face's side in source pixels, from the side of a crop saved with ``margin``."""
    return crop_side / (1 + 2 * margin)


def crop_to_input(crop: np.ndarray, preset: CropPreset) -> torch.Tensor:
    """A saved crop (H, W, 3) uint8 -> (3, S, S) float 0..255, exactly as inference cuts it.

    The whole crop is treated as the square-with-margin of a face box: the box with the
    margin removed is handed to ``crop_faces`` (the function ``CNNMaskClassifier`` uses), which
    grows it back to the full crop and resamples to ``preset.size``. A non-square crop is
    centred and its short side padded with black, as a frame edge would be at inference.
    """
    box = crop_face_box(crop, preset.margin)
    return crop_faces(torch.from_numpy(np.ascontiguousarray(crop)), box, preset)[0]


def crop_face_box(crop: np.ndarray, margin: float) -> np.ndarray:
    """The (1, 4) face box of a saved crop, for ``CNNMaskClassifier.classify(crop, box)``."""
    height, width = crop.shape[:2]
    side = float(max(height, width))
    box = inner_box(side, margin) - np.array(
        [(side - width) / 2, (side - height) / 2] * 2, np.float32)
    return box[None]


SIGNATURE_SIDE = 32  # px of the eye-aligned grey patch used to find duplicate pictures


def face_signature(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A zero-mean, unit-norm, high-passed grey patch of the face aligned on its eyes.

    Aligning on the eyes removes the rotation and zoom of augmented copies, and the high-pass
    (patch minus its blur) removes lighting, so copies of one picture correlate highly while
    different faces, even under the same pasted synthetic mask, do not. (SIGNATURE_SIDE²,).
    """
    from PIL import Image, ImageFilter

    side = SIGNATURE_SIDE
    left, right = landmarks[0].astype(np.float64), landmarks[1].astype(np.float64)
    dst_left, dst_right = np.array([0.3 * side, 0.3 * side]), np.array([0.7 * side, 0.3 * side])
    src, dst = right - left, dst_right - dst_left
    scale = np.hypot(*src) / max(np.hypot(*dst), 1e-6)
    angle = np.arctan2(src[1], src[0]) - np.arctan2(dst[1], dst[0])
    a, d = scale * np.cos(angle), scale * np.sin(angle)
    b, e = -d, a
    coeffs = (a, b, left[0] - a * dst_left[0] - b * dst_left[1],
              d, e, left[1] - d * dst_left[0] - e * dst_left[1])
    patch = Image.fromarray(image).convert("L").transform(
        (side, side), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
    detail = np.asarray(patch, np.float32) - np.asarray(
        patch.filter(ImageFilter.GaussianBlur(side / 8)), np.float32)
    vector = detail.ravel() - detail.mean()
    return vector / max(float(np.linalg.norm(vector)), 1e-6)


def mirrored_signature(signature: np.ndarray) -> np.ndarray:
    """The signature the mirrored picture would have (the canonical eyes are symmetric)."""
    side = SIGNATURE_SIDE
    return signature.reshape(side, side)[:, ::-1].ravel().copy()
