"""Generate videos of people (fixture faces) who walk in, pause, leave or put a mask on.

Every person is one known appearance, so a test knows exactly how many people a clip
holds and what each wore; the faces are ml/faces' photos, as ml/footage.py's are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ml.footage import BACKGROUND_RGB, FaceKind, _encode, face_paths

Point = tuple[float, float]


@dataclass(frozen=True)
class Person:
    """One person's appearance: on screen from ``enter_s`` to ``leave_s`` (exclusive).

    The face's top-left corner moves along ``path`` (points at times relative to
    ``enter_s``, linear in between, held after the last). ``mask_on_s`` (relative) is when
    an unmasked person puts a mask on: their face switches to a masked fixture in place.
    """

    kind: FaceKind
    enter_s: float
    leave_s: float
    path: Sequence[tuple[float, Point]]
    face: int = 0  # which fixture face of its kind
    height_px: int = 110
    mask_on_s: float | None = None
    masked_face: int = 0  # the fixture worn after mask_on_s

    def position(self, t: float) -> Point | None:
        """Top-left of the face at absolute time ``t``; None when off screen."""
        if not self.enter_s <= t < self.leave_s:
            return None
        local = t - self.enter_s
        points = list(self.path)
        if local <= points[0][0]:
            return points[0][1]
        for (t0, p0), (t1, p1) in zip(points, points[1:], strict=False):
            if t0 <= local <= t1:
                a = (local - t0) / (t1 - t0) if t1 > t0 else 1.0
                return (p0[0] + a * (p1[0] - p0[0]), p0[1] + a * (p1[1] - p0[1]))
        return points[-1][1]

    def kind_at(self, t: float) -> FaceKind:
        if self.mask_on_s is not None and t - self.enter_s >= self.mask_on_s:
            return "with_mask"
        return self.kind


@dataclass
class _Faces:
    size: dict[tuple[FaceKind, int, int], Image.Image] = field(default_factory=dict)

    def get(self, kind: FaceKind, index: int, height: int) -> Image.Image:
        key = (kind, index, height)
        if key not in self.size:
            paths = face_paths(kind)
            with Image.open(paths[index % len(paths)]) as face:
                width = round(face.width * height / face.height)
                self.size[key] = face.convert("RGB").resize(
                    (width, height), Image.Resampling.LANCZOS
                )
        return self.size[key]


def render_people(
    people: Sequence[Person], t: float, size: tuple[int, int], faces: _Faces | None = None
) -> Image.Image:
    """The frame at time ``t``: the people on screen pasted on plain grey, in list order."""
    faces = faces or _Faces()
    frame = Image.new("RGB", size, BACKGROUND_RGB)
    for person in people:
        where = person.position(t)
        if where is None:
            continue
        kind = person.kind_at(t)
        index = person.masked_face if kind != person.kind else person.face
        frame.paste(faces.get(kind, index, person.height_px), (round(where[0]), round(where[1])))
    return frame


def make_people_video(
    out: Path,
    people: Sequence[Person],
    seconds: float,
    *,
    fps: int = 10,
    size: tuple[int, int] = (640, 360),
) -> Path:
    """Encode ``seconds`` of ``people`` walking about (H.264, keyframe every second)."""
    faces = _Faces()
    # streamed to ffmpeg frame by frame: a minute of 720p would be gigabytes held at once
    stills = (
        render_people(people, i / fps, size, faces).tobytes() for i in range(round(seconds * fps))
    )
    _encode(out, stills, frames_per_still=1, fps=fps, size=size)  # type: ignore[arg-type]
    return out


def make_panning_video(
    out: Path,
    people: Sequence[Person],
    seconds: float,
    *,
    pan_px_per_s: float = 40.0,
    fps: int = 10,
    size: tuple[int, int] = (640, 360),
) -> Path:
    """``people`` filmed by a camera panning right over a textured wall: the whole frame
    moves (as a handheld or panning camera's does), the people with it. Their paths are in
    the wall's coordinates; frame ``x`` = wall ``x`` - ``pan_px_per_s * t``."""
    import numpy as np

    width, height = size
    travel = int(np.ceil(pan_px_per_s * seconds)) + 1
    rng = np.random.default_rng(7)
    # 16 px tiles of greys: every cell of the gate's grid has texture that moves
    tiles = rng.integers(90, 170, ((height + 15) // 16, (width + travel + 15) // 16), np.uint8)
    wall = np.kron(tiles, np.ones((16, 16), np.uint8))[:height, : width + travel]
    wall_rgb = Image.fromarray(np.repeat(wall[:, :, None], 3, axis=2))
    faces = _Faces()

    def still(i: int) -> bytes:
        t = i / fps
        scene = wall_rgb.copy()
        for person in people:
            where = person.position(t)
            if where is not None:
                kind = person.kind_at(t)
                index = person.masked_face if kind != person.kind else person.face
                face = faces.get(kind, index, person.height_px)
                scene.paste(face, (round(where[0]), round(where[1])))
        left = round(pan_px_per_s * t)
        return scene.crop((left, 0, left + width, height)).tobytes()

    stills = (still(i) for i in range(round(seconds * fps)))
    _encode(out, stills, frames_per_still=1, fps=fps, size=size)  # type: ignore[arg-type]
    return out


# A scene for the person tests: four people, each a known case (8 s at 10 frames/s).
# - "stays": unmasked, stands still the whole clip;
# - "passes": masked, walks in at 1 s from the left, pauses, leaves at 6 s;
# - "masks up": unmasked until 2.5 s into the clip, then masked, standing still;
# - "late": masked, walks in at 5 s and stays to the end.
VISITS = [
    Person("without_mask", 0.0, 8.0, [(0.0, (30.0, 20.0))], face=0),
    Person("with_mask", 1.0, 6.0, [(0.0, (200.0, 200.0)), (2.0, (300.0, 210.0))], face=1),
    Person(
        "without_mask", 0.0, 8.0, [(0.0, (470.0, 30.0))], face=2, mask_on_s=2.5, masked_face=3
    ),
    Person("with_mask", 5.0, 8.0, [(0.0, (180.0, 40.0)), (1.5, (250.0, 40.0))], face=4),
]
VISITS_SECONDS = 8.0
# people, masked, unmasked, ever seen unmasked (by the label each held the longest)
VISITS_PEOPLE = {"total": 4, "masked": 3, "unmasked": 1, "ever_unmasked": 2}

# Two people walking across each other's path in opposite directions (6 s).
CROSSING = [
    Person("with_mask", 0.0, 6.0, [(0.0, (20.0, 60.0)), (6.0, (520.0, 90.0))], face=0),
    Person("without_mask", 0.0, 6.0, [(0.0, (520.0, 170.0)), (6.0, (20.0, 150.0))], face=1),
]
CROSSING_SECONDS = 6.0

# People crossing segment boundaries (10 s; the distributed tests cut segments of 4 s).
# - "stays": unmasked, still, all along; "walks": masked, 1 s to 7 s, over the 4 s cut;
# - "long walk": unmasked, 3.5 s to 9.5 s, over both cuts; "last": masked, from 8.5 s.
BOUNDARIES = [
    Person("without_mask", 0.0, 10.0, [(0.0, (30.0, 20.0))], face=0),
    Person("with_mask", 1.0, 7.0, [(0.0, (480.0, 220.0)), (6.0, (330.0, 200.0))], face=1),
    Person("without_mask", 3.5, 9.5, [(0.0, (160.0, 200.0)), (6.0, (300.0, 40.0))], face=2),
    Person("with_mask", 8.5, 10.0, [(0.0, (500.0, 30.0))], face=3),
]
BOUNDARIES_SECONDS = 10.0
BOUNDARIES_PEOPLE = {"total": 4, "masked": 2, "unmasked": 2}

# The bundled people demo (worker/samples/people.mp4, 12 s): six people come and go.
DEMO = [
    Person("without_mask", 0.0, 12.0, [(0.0, (30.0, 30.0))], face=0),
    Person("with_mask", 0.5, 6.0, [(0.0, (480.0, 220.0)), (4.0, (330.0, 200.0))], face=1),
    Person("with_mask", 2.0, 9.0, [(0.0, (200.0, 220.0)), (3.0, (250.0, 200.0))], face=2),
    Person(
        "without_mask", 3.0, 12.0, [(0.0, (480.0, 30.0))], face=3, mask_on_s=3.0, masked_face=4
    ),
    Person("with_mask", 7.5, 12.0, [(0.0, (20.0, 220.0)), (3.0, (100.0, 210.0))], face=5),
    Person("without_mask", 8.0, 12.0, [(0.0, (180.0, 40.0)), (2.0, (240.0, 60.0))], face=4),
]
DEMO_SECONDS = 12.0
# by the label each held the longest; the one masking up held the mask longer
DEMO_PEOPLE = {"total": 6, "masked": 4, "unmasked": 2, "incorrect": 0, "ever_unmasked": 3}

# A still scene: three people standing, nothing moves (6 s), for motion gating.
STILL = [
    Person("without_mask", 0.0, 6.0, [(0.0, (30.0, 40.0))], face=0),
    Person("with_mask", 0.0, 6.0, [(0.0, (250.0, 200.0))], face=1),
    Person("with_mask", 0.0, 6.0, [(0.0, (470.0, 40.0))], face=2),
]
STILL_SECONDS = 6.0


def fixed_camera_scene(seconds: float = 60.0, size: tuple[int, int] = (1280, 720)) -> list[Person]:
    """A fixed camera's minute: people walk in, pause, walk out; quiet stretches between.

    Deterministic. Every 10 s a group of one to three people crosses part of the frame
    (a few masked, one masking up), then the scene is empty for a while.
    """
    width, height = size
    people: list[Person] = []
    kinds: list[FaceKind] = ["with_mask", "without_mask", "with_mask"]
    face = 0
    for block in range(int(seconds // 10)):
        t0 = block * 10.0
        group = 1 + block % 3
        for j in range(group):
            y = 80.0 + j * 200.0
            x0, x1 = (60.0, width - 400.0) if (block + j) % 2 == 0 else (width - 260.0, 200.0)
            enter = t0 + 0.5 + j
            mask_on = 2.0 if block % 4 == 3 and j == 0 else None
            people.append(
                Person(
                    "without_mask" if mask_on is not None else kinds[(block + j) % 3],
                    enter,
                    enter + 6.0,
                    # walk in, pause two seconds, walk on
                    [(0.0, (x0, y)), (2.0, ((x0 + x1) / 2, y)), (4.0, ((x0 + x1) / 2, y)),
                     (6.0, (x1, y))],
                    face=face,
                    height_px=140,
                    mask_on_s=mask_on,
                    masked_face=face + 1,
                )
            )
            face += 1
    return people

# A panning camera passing two people standing by a wall (in the wall's coordinates, for
# make_panning_video at 40 px/s), and a third stepping in later (6 s).
PANNING = [
    Person("without_mask", 0.0, 6.0, [(0.0, (140.0, 60.0))], face=0, height_px=90),
    Person("with_mask", 0.0, 6.0, [(0.0, (400.0, 160.0))], face=1, height_px=90),
    Person("with_mask", 3.0, 6.0, [(0.0, (520.0, 40.0))], face=2, height_px=90),
]
PANNING_SECONDS = 6.0


# 20 s with people over the middle, for a video split over two processes at 10 s.
SPLIT = [
    Person("without_mask", 0.0, 20.0, [(0.0, (30.0, 20.0))], face=0),
    Person("with_mask", 3.0, 15.0, [(0.0, (480.0, 220.0)), (12.0, (300.0, 200.0))], face=1),
    Person("without_mask", 8.0, 13.0, [(0.0, (160.0, 220.0)), (5.0, (200.0, 60.0))], face=2),
    Person("with_mask", 14.5, 20.0, [(0.0, (480.0, 30.0))], face=3),
]
SPLIT_SECONDS = 20.0
SPLIT_PEOPLE = {"total": 4, "masked": 2, "unmasked": 2}
