"""Build the bundled demo clip worker/samples/sample.mp4 and its expected face counts."""

from __future__ import annotations

import logging
from pathlib import Path

from _samples import out_dir_from_args, write_truth

from ml.footage import (
    BACKGROUND_RGB,
    expected_counts,
    face_paths,
    make_composition_video,
)

logger = logging.getLogger("make_sample_video")

SEGMENTS: list[tuple[int, int]] = [(2, 1), (3, 0), (0, 2), (1, 1), (0, 0), (2, 2)]
SECONDS_PER_SEGMENT = 2
FPS = 10
SIZE = (640, 360)
MAX_BYTES = 1_000_000


def build(out_dir: Path) -> tuple[Path, Path]:
    """Write sample.mp4 and sample.json into ``out_dir``; return their paths."""
    video = make_composition_video(
        out_dir / "sample.mp4",
        SEGMENTS,
        seconds_per_segment=SECONDS_PER_SEGMENT,
        fps=FPS,
        size=SIZE,
    )
    if video.stat().st_size > MAX_BYTES:
        raise RuntimeError(f"{video.name} is {video.stat().st_size} bytes, over {MAX_BYTES}")
    expected = {
        "video": video.name,
        "generator": "scripts/make_sample_video.py (ml/footage.py)",
        "faces_source": "ml/faces: chandrikadeb7/Face-Mask-Detection, MIT licence",
        "fps": FPS,
        "width": SIZE[0],
        "height": SIZE[1],
        "duration_s": len(SEGMENTS) * SECONDS_PER_SEGMENT,
        "background_rgb": list(BACKGROUND_RGB),
        "faces": {
            "with_mask": [p.name for p in face_paths("with_mask")],
            "without_mask": [p.name for p in face_paths("without_mask")],
        },
        "segments": [
            {
                "start_s": i * SECONDS_PER_SEGMENT,
                "end_s": (i + 1) * SECONDS_PER_SEGMENT,
                "masked": masked,
                "unmasked": unmasked,
            }
            for i, (masked, unmasked) in enumerate(SEGMENTS)
        ],
        "per_second": [
            {"t_s": t, "masked": masked, "unmasked": unmasked}
            for t, (masked, unmasked) in enumerate(
                expected_counts(SEGMENTS, seconds_per_segment=SECONDS_PER_SEGMENT)
            )
        ],
    }
    return video, write_truth(out_dir / "sample.json", expected)


def main() -> None:
    out_dir = out_dir_from_args(__doc__)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    video, manifest = build(out_dir)
    logger.info("wrote %s (%d bytes) and %s", video, video.stat().st_size, manifest)


if __name__ == "__main__":
    main()
