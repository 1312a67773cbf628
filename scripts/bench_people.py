"""Default (gated) against --exhaustive analysis on the same clips, in one run, stage by stage.

Usage: python scripts/bench_people.py [--seconds 60] [--clip PATH ...] [--threads 1] [--json]

Without --clip a 1280x720 fixed-camera clip of known people is generated
(ml/people_footage.py, ``fixed_camera_scene``). Each clip is analysed in this process with the
shipped defaults, once gated and once exhaustive, models loaded once; stage times come from timing
wrappers around the stages (decode is what is left of the wall time). Start-up (import of
the CLI in a fresh interpreter) and model load are reported apart from the jobs' own time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STAGES = ("decode", "gating", "detection", "classification", "tracking", "storage")
SPENT: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)
FACES_CLASSIFIED = [0]  # faces the classifier read (a call reads all faces it is given)


def timed(stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SPENT[stage] += time.perf_counter() - start
            CALLS[stage] += 1

    return wrapper


def instrument(models: Any) -> None:
    """Wrap each stage's entry point (classes and module functions the jobs look up)."""
    from storage.repositories import frames, tracks
    from worker.pipeline import classify, gating, track

    gating.MotionGate.needs_analysis = timed("gating", gating.MotionGate.needs_analysis)
    track.FaceTracker.update = timed("tracking", track.FaceTracker.update)
    # the outer detector only: a merged one calls its two inner ones
    detector = type(models.detector)
    detector.detect = timed("detection", detector.detect)
    classify_faces = timed("classification", classify.CNNMaskClassifier.classify)

    def counted(self: Any, frame: Any, xyxy: Any) -> Any:
        FACES_CLASSIFIED[0] += len(xyxy)
        return classify_faces(self, frame, xyxy)

    classify.CNNMaskClassifier.classify = counted  # type: ignore[method-assign]
    frames.replace_frames = timed("storage", frames.replace_frames)
    tracks.save_tracks = timed("storage", tracks.save_tracks)


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def startup_s() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import maskwatch.cli"], check=True, cwd=ROOT)
    return time.perf_counter() - start


def run_mode(clip: Path, models: Any, exhaustive: bool, db_dir: Path) -> dict[str, Any]:
    from maskwatch.runtime import analysis_settings
    from maskwatch.settings import Settings
    from storage.db import make_engine, make_session_factory, upgrade
    from storage.models import InputKind
    from storage.repositories import cameras, jobs, reports, tracks
    from worker.jobs import run_job

    url = f"sqlite:///{db_dir / ('exhaustive' if exhaustive else 'default')}.sqlite3"
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    settings = analysis_settings(Settings(), exhaustive=exhaustive)
    with factory() as session:
        camera = cameras.get_or_create_camera(session, "bench", "cam")
        job_id = jobs.create_job(
            session,
            camera=camera,
            input_kind=InputKind.VIDEO,
            input_path=str(clip),
            input_name=clip.name,
            settings=settings.to_dict(),
        ).id
        session.commit()
    SPENT.clear()
    CALLS.clear()
    FACES_CLASSIFIED[0] = 0
    wall0, cpu0 = time.perf_counter(), cpu_s()
    run_job(factory, job_id, models)
    wall, cpu = time.perf_counter() - wall0, cpu_s() - cpu0
    with factory() as session:
        summary = reports.job_summary(session, job_id)
        people = tracks.people_summary(session, job_id)
    stages = {stage: round(SPENT.get(stage, 0.0), 3) for stage in STAGES[1:]}
    stages["decode"] = round(max(0.0, wall - sum(stages.values())), 3)  # and glue
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "frames": summary.frames,
        "detector_calls": CALLS.get("detection", 0),
        "faces_classified": FACES_CLASSIFIED[0],
        "stages_s": {stage: stages[stage] for stage in STAGES},
        "face_frame_compliance": summary.compliance_ratio,
        "people": {
            "total": people.total,
            "masked": people.masked,
            "unmasked": people.unmasked,
            "incorrect": people.incorrect,
            "compliance_ratio": people.compliance_ratio,
        },
    }


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b > 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, action="append", default=[])
    parser.add_argument("--seconds", type=float, default=60.0, help="generated clip length")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="maskwatch-bench-people-"))
    clips: list[tuple[Path, dict[str, Any] | None]] = [(clip, None) for clip in args.clip]
    if not args.clip:
        from ml.people_footage import fixed_camera_scene, make_people_video

        people = fixed_camera_scene(args.seconds)
        clip = make_people_video(
            tmp / "fixed-camera-720p.mp4", people, args.seconds, fps=25, size=(1280, 720)
        )
        masked = sum(p.kind == "with_mask" or p.mask_on_s is not None for p in people)
        clips.append((clip, {"total": len(people), "masked": masked}))

    start = startup_s()
    from maskwatch.runtime import analysis_settings
    from maskwatch.settings import Settings
    from worker.pipeline.analyze import load_models
    from worker.pipeline.decode import probe

    load0 = time.perf_counter()
    settings = Settings()
    models = load_models(
        analysis_settings(settings), settings.checkpoint, settings.device, args.threads
    )
    load = time.perf_counter() - load0
    instrument(models)

    results = []
    for clip, truth in clips:
        duration = probe(clip).duration_s or 0.0
        default = run_mode(clip, models, False, tmp / clip.stem)
        exhaustive = run_mode(clip, models, True, tmp / clip.stem)
        results.append(
            {
                "clip": clip.name,
                "duration_s": round(duration, 2),
                "truth_people": truth,
                "default": default,
                "exhaustive": exhaustive,
                "realtime_default": ratio(duration, default["wall_s"]),
                "realtime_exhaustive": ratio(duration, exhaustive["wall_s"]),
                "cpu_ratio": ratio(exhaustive["cpu_s"], default["cpu_s"]),
                "stage_ratios": {
                    s: ratio(exhaustive["stages_s"][s], default["stages_s"][s]) for s in STAGES
                },
            }
        )
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {
        "startup_s": round(start, 3),
        "model_load_s": round(load, 3),
        "torch_threads": args.threads,
        "peak_rss_mb": round(peak_rss_mb, 1),
        "clips": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"start-up (import maskwatch.cli) {start:.2f} s · model load {load:.2f} s · "
          f"peak RSS {peak_rss_mb:.0f} MB · torch threads {args.threads}")
    for r in results:
        d, e = r["default"], r["exhaustive"]
        print(f"\n{r['clip']} ({r['duration_s']} s; truth {r['truth_people']})")
        print(f"  {'':16}{'default':>10}{'exhaustive':>12}{'ratio':>8}")
        for key in ("wall_s", "cpu_s", "frames", "detector_calls", "faces_classified"):
            print(f"  {key:16}{d[key]:>10}{e[key]:>12}{ratio(e[key], d[key]) or '':>8}")
        for stage in STAGES:
            ds, es = d["stages_s"][stage], e["stages_s"][stage]
            print(f"  {stage:16}{ds:>10}{es:>12}{r['stage_ratios'][stage] or '':>8}")
        print(f"  realtime x       {r['realtime_default']:>10}{r['realtime_exhaustive']:>12}")
        print(f"  face-frame compliance {d['face_frame_compliance']} vs "
              f"{e['face_frame_compliance']}; people {d['people']} vs {e['people']}")


if __name__ == "__main__":
    main()
