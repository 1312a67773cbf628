"""Build the bundled people demo worker/samples/people.mp4 and its true people counts."""

from __future__ import annotations

from pathlib import Path

from _samples import out_dir_from_args, write_truth

from ml.people_footage import DEMO, DEMO_PEOPLE, DEMO_SECONDS, make_people_video

FPS = 10
SIZE = (640, 360)


def build(out_dir: Path) -> tuple[Path, Path]:
    """Write people.mp4 and people.json into ``out_dir``; return their paths."""
    video = make_people_video(out_dir / "people.mp4", DEMO, DEMO_SECONDS, fps=FPS, size=SIZE)
    truth = {
        "video": video.name,
        "generator": "scripts/make_people_sample.py (ml/people_footage.py)",
        "faces_source": "ml/faces: chandrikadeb7/Face-Mask-Detection, MIT licence",
        "fps": FPS,
        "width": SIZE[0],
        "height": SIZE[1],
        "duration_s": DEMO_SECONDS,
        "people": DEMO_PEOPLE,
        "appearances": [
            {
                "enter_s": p.enter_s,
                "leave_s": p.leave_s,
                "kind": p.kind,
                "mask_on_s": None if p.mask_on_s is None else p.enter_s + p.mask_on_s,
            }
            for p in DEMO
        ],
    }
    return video, write_truth(out_dir / "people.json", truth)


def main() -> None:
    for path in build(out_dir_from_args(__doc__)):
        print(path)


if __name__ == "__main__":
    main()
