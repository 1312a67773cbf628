"""Measure MTCNN settings on annotated validation scenes: one whole-pipeline run per setting.

Backs: the shipped MTCNN settings (stage and face thresholds, min face size, enlargement).

Usage: python ml/experiments/tune_detector.py ANNOTATIONS_DIR IMAGES_DIR [--split-file FILE]
           [--checkpoint PATH] [--limit N] [--threads 1] [--out var/tune_detector.json]

Each detector configuration of GRID runs the pipeline (classify_image) once, at the lowest
face threshold asked for; higher face thresholds are derived by dropping faces below them,
which is exactly what the detector's own filter would have done (see keep_face_prob).
Without a split file the last 20% of the sorted scene ids stand in for the validation split.
Prints a Markdown table for docs/model-card.md and writes every full report as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from maskwatch.settings import get_settings  # noqa: E402
from ml.data.scenes import Scene, load_scenes, read_split, tail_split  # noqa: E402
from ml.evaluation.run import (  # noqa: E402
    ScenePrediction,
    describe_run,
    evaluate,
    keep_face_prob,
    predict_scenes,
)
from ml.metrics import match_greedy  # noqa: E402
from worker.pipeline.analyze import AnalysisSettings, load_models  # noqa: E402

DEFAULT_SPLIT = ROOT / "ml" / "training" / "splits" / "kaggle_scenes_val.txt"
DEFAULTS = (0.6, 0.7, 0.7)
# (min_face_size, MTCNN stage thresholds, upscale): defaults, smaller faces, looser stages,
# upscaling, and the two combined.
GRID: tuple[tuple[int, tuple[float, float, float], float], ...] = (
    (20, DEFAULTS, 1.0),
    (12, DEFAULTS, 1.0),
    (10, DEFAULTS, 1.0),
    (10, (0.5, 0.6, 0.6), 1.0),
    (10, (0.4, 0.5, 0.5), 1.0),
    (20, DEFAULTS, 1.5),
    (20, DEFAULTS, 2.0),
    (12, (0.5, 0.6, 0.6), 2.0),
)


def recall_at_iou(
    scenes: Sequence[Scene], predictions: Sequence[ScenePrediction], iou_threshold: float
) -> float:
    """Class-agnostic face recall at a looser IoU: how many misses are box-convention misses."""
    found = total = 0
    for scene, prediction in zip(scenes, predictions, strict=True):
        matches = match_greedy(
            prediction.xyxy, prediction.face_probs, scene.xyxy, scene.difficult, iou_threshold
        )
        found += int(matches.gt_matched[~scene.difficult].sum())
        total += int((~scene.difficult).sum())
    return found / total if total else 0.0


def choose_scenes(args: argparse.Namespace) -> tuple[list[Scene], str]:
    if args.split_file.is_file():
        ids, source = read_split(args.split_file), str(args.split_file)
    else:
        ids = tail_split(p.stem for p in args.annotations_dir.glob("*.xml"))
        source = f"last 20% of sorted scene ids ({args.split_file} not found)"
    return load_scenes(args.annotations_dir, args.images_dir, ids, args.limit), source


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table_row(report: dict[str, Any]) -> str:
    settings, per_class, faces = report["settings"], report["per_class"], report["faces"]
    sizes = faces["recall_by_size"]
    thresholds = ",".join(f"{v:g}" for v in settings["detector_thresholds"])
    cells = [
        str(settings["min_face_size"]),
        thresholds,
        f"{settings['upscale']:g}",
        f"{settings['face_threshold']:g}",
        *(fmt(per_class.get(name, {}).get("ap")) for name in ("with_mask", "without_mask")),
        fmt(faces["recall"]),
        *(fmt(sizes[b]["recall"]) for b in ("<16", "16-32", "32-64", ">=64")),
        fmt(faces["recall_iou_0.3"]),
        fmt(faces["precision"]),
        fmt(report["compliance"]["mae"], 3),
        fmt(report["compliance"]["mae_detected"], 3),
        str(report["compliance"]["scenes_missed"]),
        fmt(report["timing"]["ms_per_image"], 0),
        fmt(report["timing"]["detector_ms_per_image"], 0),
    ]
    return "| " + " | ".join(cells) + " |"


TABLE_HEAD = (
    "| min face | thresholds | upscale | face thr | AP with | AP without | face R | R <16 "
    "| R 16-32 | R 32-64 | R >=64 | R @IoU.3 | face P | MAE | MAE found | missed | ms/img "
    "| det ms |\n" + "|---" * 18 + "|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("annotations_dir", type=Path)
    parser.add_argument("images_dir", type=Path)
    parser.add_argument("--split-file", type=Path, default=DEFAULT_SPLIT)
    parser.add_argument("--checkpoint", type=Path, default=get_settings().checkpoint)
    parser.add_argument("--limit", type=int, help="at most this many scenes (for trials)")
    parser.add_argument("--face-thresholds", default="0.9,0.7,0.5")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "tune_detector.json")
    args = parser.parse_args()

    scenes, source = choose_scenes(args)
    face_thresholds = sorted({float(v) for v in args.face_thresholds.split(",")}, reverse=True)
    print(f"{len(scenes)} scenes from {source}; checkpoint {args.checkpoint}", file=sys.stderr)
    reports: list[dict[str, Any]] = []
    for min_face_size, thresholds, upscale in GRID:
        settings = AnalysisSettings(
            min_face_size=min_face_size,
            detector_thresholds=thresholds,
            upscale=upscale,
            face_threshold=min(face_thresholds),
        )
        models = load_models(settings, args.checkpoint, "cpu", args.threads)
        started = time.perf_counter()
        predictions = predict_scenes(scenes, models, settings)
        print(
            f"{settings.detector_config()}: {time.perf_counter() - started:.0f} s", file=sys.stderr
        )
        # Faces below MTCNN's last stage threshold never come out: those face thresholds
        # are all the same setting, so only the distinct ones are scored.
        for face_threshold in sorted(
            {max(t, thresholds[2]) for t in face_thresholds}, reverse=True
        ):
            kept = [keep_face_prob(p, face_threshold) for p in predictions]
            chosen = replace(settings, face_threshold=face_threshold)
            report = {
                **describe_run(chosen, args.checkpoint, models.classifier.class_names),
                **evaluate(scenes, kept, models.classifier.class_names),
            }
            report["faces"]["recall_iou_0.3"] = recall_at_iou(scenes, kept, 0.3)
            report["scenes_source"] = source
            reports.append(report)
            print(table_row(report), file=sys.stderr)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(reports, indent=2))
    gt = reports[0]["gt_faces"] if reports else {}
    print(
        f"{len(scenes)} scenes ({source}); ground-truth faces {gt}; "
        f"mean over scenes {np.mean([s.face_count for s in scenes]):.1f} faces\n"
    )
    print(TABLE_HEAD)
    for report in reports:
        print(table_row(report))


if __name__ == "__main__":
    main()
