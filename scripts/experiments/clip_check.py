"""Single-face clips of ../shared/videos whose one face's label is known from the clip.

No clip in ../shared has box labels, but two show one person throughout whose mask state
never changes: woman-laptop-mask.mp4 (masked) and man-outdoors-nomask.mp4 (unmasked). For
each sampled frame (5 fps, the shipped sampling) this counts the faces the pipeline reports
and their labels: a frame should have exactly one face, with the clip's label. It is a check
on footage, not a benchmark: two people, about 90 frames, and the face is large.

    python scripts/experiments/clip_check.py ../shared/videos \
        [--checkpoint F] [--detector-weights F]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from maskwatch.runtime import analysis_settings, models_for
from maskwatch.settings import get_settings
from worker.pipeline.analyze import analyze_frames
from worker.pipeline.decode import iter_frames, probe

CLIPS = {"woman-laptop-mask.mp4": "with_mask", "man-outdoors-nomask.mp4": "without_mask"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("videos", type=Path)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--detector-weights")
    args = parser.parse_args()
    settings = get_settings()
    if args.checkpoint:
        settings = settings.model_copy(update={"checkpoint": args.checkpoint})
    analysis = analysis_settings(settings, detector_weights=args.detector_weights)
    models = models_for(settings, analysis)
    for clip, truth in CLIPS.items():
        info = probe(args.videos / clip)
        frames = iter_frames(info, sample_fps=analysis.sample_fps,
                             max_side=analysis.max_frame_side)
        faces_per_frame: Counter[int] = Counter()
        labels: Counter[str] = Counter()
        right = 0
        for record in analyze_frames(frames, models):
            faces_per_frame[record.faces] += 1
            labels.update(face.label for face in record.detections)
            right += record.faces == 1 and record.detections[0].label == truth
        total = sum(faces_per_frame.values())
        print(json.dumps({
            "clip": clip, "truth": truth, "frames": total,
            "faces_per_frame": dict(sorted(faces_per_frame.items())),
            "labels": dict(labels), "frames_one_face_right": right,
            "share_right": round(right / total, 3) if total else None,
        }))


if __name__ == "__main__":
    main()
