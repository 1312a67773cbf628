"""Detector time per frame for several weights files, measured in alternation (paired).

Backs: the shipped detector, two MTCNNs merged (SHIPPED_DETECTOR_WEIGHTS), against the fast
single one, at the cost docs/benchmarks.md gives.

    python ml/experiments/detector_time.py WEIGHTS... [--scenes 20] [--rounds 3] [--threads 1]

Each WEIGHTS is a train-detector file (a name under worker/models/ or a path; `stock` means the
wheel's weights; `a.pt+b.pt` two detectors merged). Per round, each detector runs on a synthetic
1280x720 frame of four committed test faces and on the first N validation scenes of
kaggle-scenes-dev (if ../shared is there), with the shipped DetectorConfig otherwise (min face
20, frames enlarged to 600 px). Alternating the detectors inside each round keeps their figures
comparable on a machine whose load varies.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from maskwatch.core.analysis import DetectorConfig  # noqa: E402
from ml.footage import render_composition  # noqa: E402
from worker.pipeline.detect import build_detector  # noqa: E402

SCENES = ROOT.parent / "shared" / "datasets" / "kaggle-scenes-dev" / "images"
VAL = ROOT / "ml" / "training" / "splits" / "kaggle_scenes_val.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+")
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    frame = np.asarray(render_composition(2, 2, size=(1280, 720)))
    ids = VAL.read_text().split()[: args.scenes] if SCENES.is_dir() else []
    scenes = [np.asarray(Image.open(SCENES / f"{i}.jpg").convert("RGB")) for i in ids]
    detectors = {
        w: build_detector(DetectorConfig(detector_weights=None if w == "stock" else w),
                          torch.device("cpu"))
        for w in args.weights
    }
    times: dict[str, dict[str, list[float]]] = {w: {"720p": [], "scene": []} for w in detectors}
    for _ in range(args.rounds):
        for name, detector in detectors.items():
            start = time.perf_counter()
            detector.detect([frame])
            times[name]["720p"].append(time.perf_counter() - start)
            if scenes:
                start = time.perf_counter()
                detector.detect(scenes)
                times[name]["scene"].append((time.perf_counter() - start) / len(scenes))
    for name, row in times.items():
        cells = [f"{kind} ms " + ", ".join(f"{1000 * t:.0f}" for t in values)
                 for kind, values in row.items() if values]
        print(f"{name}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
