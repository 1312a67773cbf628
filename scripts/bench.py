"""Time each pipeline stage (decode, detect, classify, store) and the whole on a reference clip.

Usage: python scripts/bench.py [--clip PATH] [--sample-fps 5] [--threads 2] [--json]
Without --clip a 1280x720 reference clip is generated from the committed test faces.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import _repo  # noqa: F401  (puts the repository root on sys.path)
import torch

from maskwatch.runtime import analysis_settings
from maskwatch.settings import Settings
from storage.db import make_engine, make_session_factory, upgrade
from storage.models import InputKind, Job
from storage.repositories import cameras, frames, jobs
from worker.jobs import run_job
from worker.pipeline.analyze import frame_record, load_models
from worker.pipeline.decode import iter_frames, output_size, probe


def reference_clip(out_dir: Path) -> Path:
    from ml.footage import make_composition_video

    segments = [(2, 1), (1, 2), (3, 0), (0, 0), (2, 2)] * 2
    return make_composition_video(
        out_dir / "reference-720p.mp4",
        segments,
        seconds_per_segment=2,
        fps=25,
        size=(1280, 720),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path)
    parser.add_argument("--sample-fps", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--min-face-size", type=int)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    settings = Settings()
    analysis = analysis_settings(
        settings, sample_fps=args.sample_fps, min_face_size=args.min_face_size
    )
    tmp = Path(tempfile.mkdtemp(prefix="maskwatch-bench-"))
    clip = args.clip or reference_clip(tmp)
    info = probe(clip)
    out_w, out_h = output_size(info, analysis.max_frame_side)

    t0 = time.perf_counter()
    models = load_models(analysis, settings.checkpoint, "auto", args.threads)
    load_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    decoded = list(
        iter_frames(info, sample_fps=analysis.sample_fps, max_side=analysis.max_frame_side)
    )
    decode_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    detections = [models.detector.detect([f.image])[0] for f in decoded]
    detect_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    labels = [
        models.classifier.classify(f.image, d.xyxy)
        for f, d in zip(decoded, detections, strict=True)
    ]
    classify_s = time.perf_counter() - t0
    records = [
        frame_record(f, d, lab) for f, d, lab in zip(decoded, detections, labels, strict=True)
    ]
    face_count = sum(r.faces for r in records)

    url = f"sqlite:///{tmp / 'bench.sqlite3'}"
    upgrade(url)
    session_factory = make_session_factory(make_engine(url))
    with session_factory() as session:
        cam = cameras.get_or_create_camera(session, site="bench", name="bench")

        def new_job() -> Job:
            job = jobs.create_job(session, camera=cam, input_kind=InputKind.VIDEO,
                                  input_path=str(clip), input_name=clip.name,
                                  settings=analysis.to_dict())
            session.commit()
            return job

        store_job = new_job()
        t0 = time.perf_counter()
        for i in range(0, len(records), 25):
            frames.replace_frames(session, store_job, records[i : i + 25])
            session.commit()
        store_s = time.perf_counter() - t0
        whole_id = new_job().id
    t0 = time.perf_counter()
    run_job(session_factory, whole_id, models)
    whole_s = time.perf_counter() - t0

    n = len(decoded)
    duration = info.duration_s or 0.0
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"device {models.device}, torch {torch.__version__}",
        "clip": clip.name,
        "source": f"{info.width}x{info.height} @ {info.fps} fps, {duration:.1f} s",
        "analysed_size": f"{out_w}x{out_h}",
        "sample_fps": analysis.sample_fps,
        "min_face_size": analysis.min_face_size,
        "detector_weights": analysis.detector_weights,
        "mirror_faces": analysis.mirror_faces,
        "frames": n,
        "faces": face_count,
        "model_load_s": round(load_s, 2),
        "decode_fps": round(n / decode_s, 1),
        "detect_fps": round(n / detect_s, 2),
        "classify_ms_per_face": round(1000 * classify_s / max(face_count, 1), 2),
        "store_frames_per_s": round(n / store_s, 1),
        "whole_fps": round(n / whole_s, 2),
        "whole_s": round(whole_s, 2),
        "realtime_factor": round(duration / whole_s, 2) if duration else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")


if __name__ == "__main__":
    main()
