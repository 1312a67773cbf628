"""Synthetic footage whose faces (how many, masked or not, when) are known exactly: the tests'
videos and the bundled demo clip (scripts/make_sample_video.py) are made here."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from PIL import Image

logger = logging.getLogger(__name__)

FACES_DIR = Path(__file__).resolve().parent / "faces"  # see faces/README.md (MIT licence)
BACKGROUND_RGB = (128, 128, 128)
FACE_HEIGHTS_PX = (150, 140, 160, 130)  # cycled over the faces of a frame
MAX_FACES_PER_FRAME = 4  # what fits side by side in 640 px with every face detected
ENCODE_TIMEOUT_S = 120.0

FaceKind = Literal["with_mask", "without_mask"]
Segment = tuple[int, int]  # (n_masked, n_unmasked) faces shown together


def face_paths(kind: FaceKind) -> list[Path]:
    """The committed fixture faces of one kind, in a stable order."""
    paths = sorted((FACES_DIR / kind).glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no fixture faces in {FACES_DIR / kind}")
    return paths


def render_composition(
    n_masked: int,
    n_unmasked: int,
    *,
    size: tuple[int, int] = (640, 360),
    first_masked: int = 0,
    first_unmasked: int = 0,
) -> Image.Image:
    """One frame: ``n_masked`` + ``n_unmasked`` fixture faces side by side on plain grey.

    Faces alternate masked / unmasked from the left; each is 130-160 px tall. Which faces
    appear rotates with ``first_masked`` / ``first_unmasked`` (indices into ``face_paths``).
    """
    if n_masked < 0 or n_unmasked < 0:
        raise ValueError(f"face counts must be >= 0, got ({n_masked}, {n_unmasked})")
    if n_masked + n_unmasked > MAX_FACES_PER_FRAME:
        raise ValueError(
            f"at most {MAX_FACES_PER_FRAME} faces fit in a frame, got {n_masked + n_unmasked}"
        )
    masked, unmasked = face_paths("with_mask"), face_paths("without_mask")
    order: list[Path] = []
    m = u = 0
    while m < n_masked or u < n_unmasked:
        if m < n_masked:
            order.append(masked[(first_masked + m) % len(masked)])
            m += 1
        if u < n_unmasked:
            order.append(unmasked[(first_unmasked + u) % len(unmasked)])
            u += 1

    tiles = []
    for position, path in enumerate(order):
        with Image.open(path) as face:
            height = FACE_HEIGHTS_PX[position % len(FACE_HEIGHTS_PX)]
            width = round(face.width * height / face.height)
            tiles.append(face.convert("RGB").resize((width, height), Image.Resampling.LANCZOS))

    frame = Image.new("RGB", size, BACKGROUND_RGB)
    gap = (size[0] - sum(tile.width for tile in tiles)) / (len(tiles) + 1)
    if tiles and gap < 4:
        raise ValueError(f"{len(tiles)} faces do not fit side by side in {size[0]} px")
    x = gap
    for position, tile in enumerate(tiles):
        jitter = (-20, 15, -5, 20)[position % 4]  # not all on one line
        y = (size[1] - tile.height) // 2 + jitter
        frame.paste(tile, (round(x), y))
        x += tile.width + gap
    return frame


def make_composition_video(
    out: Path,
    segments: Sequence[Segment],
    *,
    seconds_per_segment: int = 2,
    fps: int = 10,
    size: tuple[int, int] = (640, 360),
) -> Path:
    """Encode one still composition per segment, each held ``seconds_per_segment`` seconds.

    H.264 yuv420p MP4 with ``+faststart`` and a keyframe every second. Consecutive segments
    show different people (the face choice rotates through the fixtures).
    """
    if not segments:
        raise ValueError("need at least one segment")
    stills = []
    used_masked = used_unmasked = 0
    for n_masked, n_unmasked in segments:
        stills.append(
            render_composition(
                n_masked,
                n_unmasked,
                size=size,
                first_masked=used_masked,
                first_unmasked=used_unmasked,
            ).tobytes()
        )
        used_masked += n_masked
        used_unmasked += n_unmasked
    _encode(out, stills, frames_per_still=seconds_per_segment * fps, fps=fps, size=size)
    return out


def make_blank_video(
    out: Path, seconds: int, fps: int = 10, *, size: tuple[int, int] = (640, 360)
) -> Path:
    """A plain grey video with no face at all."""
    still = Image.new("RGB", size, BACKGROUND_RGB).tobytes()
    _encode(out, [still], frames_per_still=seconds * fps, fps=fps, size=size)
    return out


def make_truncated_copy(src: Path, out: Path, fraction: float) -> Path:
    """The first ``fraction`` of ``src``'s bytes, like an upload cut short."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    data = src.read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


def expected_counts(
    segments: Sequence[Segment], *, seconds_per_segment: int = 2
) -> list[tuple[int, int]]:
    """(masked, unmasked) faces on screen at each whole second t = 0, 1, ... of the video."""
    return [(masked, unmasked) for masked, unmasked in segments for _ in range(seconds_per_segment)]


def build_encode_args(out: Path, *, fps: int, size: tuple[int, int]) -> list[str]:
    """ffmpeg argv that encodes raw RGB frames from stdin into a small H.264 MP4."""
    return [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{size[0]}x{size[1]}",
        "-r",
        str(fps),
        "-i",
        "pipe:0",
        "-c:v",
        "libx264",
        "-preset",
        "medium",
        "-crf",
        "20",
        "-g",
        str(fps),
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        f"file:{out.absolute()}",
    ]


def _encode(
    out: Path, stills: list[bytes], *, frames_per_still: int, fps: int, size: tuple[int, int]
) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        build_encode_args(out, fps=fps, size=size),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stderr is not None
    try:
        for still in stills:
            for _ in range(frames_per_still):
                proc.stdin.write(still)
        _, err = proc.communicate(timeout=ENCODE_TIMEOUT_S)
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not encode {out.name}: {err.decode(errors='replace')}")
    logger.debug("wrote %s (%d bytes)", out, out.stat().st_size)
