"""Default (gated) against --exhaustive analysis on the same clips, in one run, stage by stage.

Usage: python scripts/bench_people.py [--seconds 60] [--clip PATH ...] [--threads 1] [--json]
       [--under-load] [--load-seconds 30]

Counts the detector's work too: whole-frame detector calls, calls on regions (tracked frames)
and their crops, the frame pixels searched (megapixels, before MTCNN's enlargement), the
PNet pyramid searches (one per detector per whole frame or searched crop) and the known faces
followed with RNet/ONet instead (one per detector that tried, worker/pipeline/detect.py).

Without --clip a 1280x720 fixed-camera clip of known people is generated
(ml/people_footage.py, ``fixed_camera_scene``). Each clip is analysed in this process with the
shipped defaults, once gated and once exhaustive, models loaded once; stage times come from timing
wrappers around the stages (decode is what is left of the wall time). Start-up is reported apart
from the jobs' own time, each part in fresh interpreters: `maskwatch --help`, the imports of the
analysis path (the CLI and the pipeline, torch with it), and model load.

--under-load: `maskwatch analyze` (a fresh process each time, as a user runs it) on a generated
fixed-camera clip of --load-seconds, with the shipped --processes (segments in processes of one
torch thread) and with --processes 1 and OpenMP's default waits (one process, torch's own thread
count: the CLI before issue 14), each on the machine as it is and then beside one busy-looping
process per core; prints each run's analysis time (start-up and model load apart) and the
throughput under load relative to the same command without it, in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _repo import ROOT

STAGES = ("decode", "gating", "detection", "classification", "tracking", "storage")
SPENT: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)
PIXELS: dict[str, int] = defaultdict(int)  # frame pixels searched: whole frames, regions
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
    from worker.pipeline import classify, regions, track

    planner = regions.SparsePlanner
    planner.plan = timed("gating", planner.plan)  # type: ignore[method-assign]
    track.FaceTracker.update = timed("tracking", track.FaceTracker.update)
    # the outer detector only: a merged one calls its two inner ones
    detector = type(models.detector)
    full, in_regions = detector.detect, detector.detect_regions

    def detect(self: Any, images: Any) -> Any:
        PIXELS["full"] += sum(image.shape[0] * image.shape[1] for image in images)
        return full(self, images)

    def detect_regions(self: Any, image: Any, rects: Any, expected: Any = None,
                       follow: Any = None) -> Any:
        PIXELS["regions"] += sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in rects)
        CALLS["region_crops"] += len(rects)
        return in_regions(self, image, rects, expected, follow)

    from worker.pipeline import detect as detect_module

    pyramid, follow = detect_module.detect_faces, detect_module.follow_faces

    def searched(*args: Any, **kwargs: Any) -> Any:
        CALLS["pnet_searches"] += 1
        return pyramid(*args, **kwargs)

    def followed(frame: Any, boxes: Any, *args: Any, **kwargs: Any) -> Any:
        CALLS["faces_followed"] += len(boxes)
        return follow(frame, boxes, *args, **kwargs)

    detect_module.detect_faces = searched
    detect_module.follow_faces = followed
    detector.detect = timed("detection", detect)
    detector.detect_regions = timed("region_detection", detect_regions)
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


def fresh_env(**extra: str) -> dict[str, str]:
    """This checkout first on the path, so that fresh interpreters run the code benchmarked."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def wall_of(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, cwd=ROOT, env=fresh_env(), stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


# What `maskwatch analyze` imports before it analyses: the CLI, the job service, the pipeline.
ANALYSIS_IMPORTS = "import maskwatch.cli, worker.local, worker.jobs, worker.pipeline.analyze"
MODEL_LOAD = """
import time
import worker.pipeline.analyze  # torch: imported before the clock starts
from maskwatch.runtime import analysis_settings, models_for
from maskwatch.settings import get_settings
settings = get_settings()
analysis = analysis_settings(settings)
start = time.perf_counter()
models_for(settings, analysis)
print(time.perf_counter() - start)
"""


def startup(repeat: int = 3) -> dict[str, float]:
    """Seconds of each start-up part in fresh interpreters, the median of ``repeat`` runs:
    `maskwatch --help` (interpreter, CLI imports, help text), the interpreter alone, the imports
    of the analysis path (torch with them), and model load after those imports."""
    def median(values: list[float]) -> float:
        return round(sorted(values)[len(values) // 2], 3)

    runs: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeat):
        runs["interpreter_s"].append(wall_of([sys.executable, "-c", "pass"]))
        runs["help_s"].append(wall_of([sys.executable, "-m", "maskwatch.cli", "--help"]))
        runs["analysis_imports_s"].append(wall_of([sys.executable, "-c", ANALYSIS_IMPORTS]))
        done = subprocess.run(
            [sys.executable, "-c", MODEL_LOAD], check=True, cwd=ROOT, env=fresh_env(),
            capture_output=True, text=True,
        )
        runs["model_load_s"].append(float(done.stdout.split()[-1]))
    return {key: median(values) for key, values in runs.items()}


# `maskwatch analyze` prints this on stderr (maskwatch/commands/analyze.py).
TIMES = re.compile(
    r"start-up (?P<startup>[\d.]+) s .* database and jobs (?P<setup>[\d.]+) s · "
    r"torch import (?P<torch>[\d.]+) s · "
    r"model load (?P<load>[\d.]+) s · analysis (?P<analysis>[\d.]+) s"
)


def analyze_cli(clip: Path, db: Path, processes: int, old_waits: bool) -> dict[str, Any]:
    """One `maskwatch analyze --json` in a fresh process; its times and what it found."""
    # An empty OMP_WAIT_POLICY is not a policy: OpenMP keeps its default (spin, then sleep),
    # as before the worker package set PASSIVE.
    env = fresh_env(OMP_WAIT_POLICY="") if old_waits else fresh_env()
    db.unlink(missing_ok=True)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "maskwatch.cli", "analyze", str(clip), "--json",
         "--db", f"sqlite:///{db}", "--processes", str(processes)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )
    wall = time.perf_counter() - start
    found = TIMES.search(done.stderr)
    if found is None:
        raise RuntimeError(f"no times in the output of maskwatch analyze: {done.stderr[-500:]}")
    report = json.loads(done.stdout)
    return {
        "wall_s": round(wall, 2),
        "startup_s": float(found["startup"]),
        "database_s": float(found["setup"]),
        "torch_import_s": float(found["torch"]),
        "model_load_s": float(found["load"]),
        "analysis_s": float(found["analysis"]),
        "people": report["totals"]["people"]["total"] if "totals" in report else None,
    }


def busy_loops(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def under_load(clip: Path, tmp: Path) -> list[dict[str, Any]]:
    """Each configuration on the machine as it is, then beside one busy loop per core."""
    configurations = [
        ("shipped: --processes 2, 1 torch thread each, passive waits",
         min(2, os.cpu_count() or 1), False),
        ("before: --processes 1, torch's threads, OpenMP's default waits", 1, True),
    ]
    cores = os.cpu_count() or 1
    results: list[dict[str, Any]] = []
    for name, processes, old_waits in configurations:
        quiet = analyze_cli(clip, tmp / "load.sqlite3", processes, old_waits)
        quiet["load_average_before"] = load_average()
        loops = busy_loops(cores)
        try:
            time.sleep(1.0)
            loaded = analyze_cli(clip, tmp / "load.sqlite3", processes, old_waits)
            loaded["load_average_after"] = load_average()
        finally:
            for loop in loops:
                loop.kill()
                loop.wait()
        results.append({
            "configuration": name,
            "busy_loops": cores,
            "unloaded": quiet,
            "loaded": loaded,
            "throughput_under_load": ratio(quiet["analysis_s"], loaded["analysis_s"]),
        })
    return results


def run_mode(clip: Path, models: Any, exhaustive: bool, db_dir: Path) -> dict[str, Any]:
    from sqlalchemy import func, select

    from maskwatch.runtime import analysis_settings
    from maskwatch.settings import Settings
    from storage.db import make_engine, make_session_factory, upgrade
    from storage.models import FrameStat, InputKind
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
    PIXELS.clear()
    FACES_CLASSIFIED[0] = 0
    wall0, cpu0 = time.perf_counter(), cpu_s()
    run_job(factory, job_id, models)
    wall, cpu = time.perf_counter() - wall0, cpu_s() - cpu0
    with factory() as session:
        summary = reports.job_summary(session, job_id)
        people = tracks.people_summary(session, job_id)
        modes = dict(
            session.execute(
                select(FrameStat.mode, func.count())
                .where(FrameStat.job_id == job_id)
                .group_by(FrameStat.mode)
            ).all()
        )
    SPENT["detection"] += SPENT.pop("region_detection", 0.0)
    stages = {stage: round(SPENT.get(stage, 0.0), 3) for stage in STAGES[1:]}
    stages["decode"] = round(max(0.0, wall - sum(stages.values())), 3)  # and glue
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "frames": summary.frames,
        "detector_calls": CALLS.get("detection", 0),
        "region_calls": CALLS.get("region_detection", 0),
        "region_crops": CALLS.get("region_crops", 0),
        "pnet_searches": CALLS.get("pnet_searches", 0),
        "faces_followed": CALLS.get("faces_followed", 0),
        "mpixels_detected": round((PIXELS["full"] + PIXELS["regions"]) / 1e6, 1),
        "modes": {mode: modes.get(mode, 0) for mode in ("analysed", "tracked", "carried")},
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
    parser.add_argument("--under-load", action="store_true",
                        help="also `maskwatch analyze` with and without a busy loop per core")
    parser.add_argument("--load-seconds", type=float, default=30.0,
                        help="length of the clip generated for --under-load")
    parser.add_argument("--skip-modes", action="store_true",
                        help="skip default against --exhaustive (start-up and --under-load only)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="maskwatch-bench-people-"))
    clips: list[tuple[Path, dict[str, Any] | None]] = [(clip, None) for clip in args.clip]
    if not args.clip and not args.skip_modes:
        from ml.people_footage import fixed_camera_scene, make_people_video

        people = fixed_camera_scene(args.seconds)
        clip = make_people_video(
            tmp / "fixed-camera-720p.mp4", people, args.seconds, fps=25, size=(1280, 720)
        )
        masked = sum(p.kind == "with_mask" or p.mask_on_s is not None for p in people)
        clips.append((clip, {"total": len(people), "masked": masked}))

    start = startup()
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

    results: list[dict[str, Any]] = []
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
    loaded: list[dict[str, Any]] = []
    if args.under_load:
        from ml.people_footage import fixed_camera_scene, make_people_video

        load_clip = make_people_video(
            tmp / "fixed-camera-720p-load.mp4", fixed_camera_scene(args.load_seconds),
            args.load_seconds, fps=25, size=(1280, 720),
        )
        loaded = under_load(load_clip, tmp)
    report: dict[str, Any] = {
        "startup": start,
        "model_load_in_process_s": round(load, 3),
        "torch_threads": args.threads,
        "peak_rss_mb": round(peak_rss_mb, 1),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "clips": results,
        "under_load": loaded,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"start-up, fresh interpreters (median of 3): `maskwatch --help` {start['help_s']:.2f} s"
          f" (the interpreter alone {start['interpreter_s']:.2f} s) · imports of the analysis "
          f"path {start['analysis_imports_s']:.2f} s · then model load "
          f"{start['model_load_s']:.2f} s")
    print(f"this process: model load {load:.2f} s · peak RSS {peak_rss_mb:.0f} MB · "
          f"torch threads {args.threads}")
    for r in results:
        d, e = r["default"], r["exhaustive"]
        print(f"\n{r['clip']} ({r['duration_s']} s; truth {r['truth_people']})")
        print(f"  {'':16}{'default':>10}{'exhaustive':>12}{'ratio':>8}")
        for key in ("wall_s", "cpu_s", "frames", "detector_calls", "region_calls",
                    "region_crops", "pnet_searches", "faces_followed", "mpixels_detected",
                    "faces_classified"):
            print(f"  {key:16}{d[key]:>10}{e[key]:>12}{ratio(e[key], d[key]) or '':>8}")
        print(f"  frame modes      {d['modes']} vs {e['modes']}")
        for stage in STAGES:
            ds, es = d["stages_s"][stage], e["stages_s"][stage]
            print(f"  {stage:16}{ds:>10}{es:>12}{r['stage_ratios'][stage] or '':>8}")
        print(f"  realtime x       {r['realtime_default']:>10}{r['realtime_exhaustive']:>12}")
        print(f"  face-frame compliance {d['face_frame_compliance']} vs "
              f"{e['face_frame_compliance']}; people {d['people']} vs {e['people']}")
    for r in loaded:
        q, b = r["unloaded"], r["loaded"]
        print(f"\nunder load ({r['busy_loops']} busy loops): {r['configuration']}")
        for name, run in (("without", q), ("with", b)):
            print(f"  {name:8} the loops: analysis {run['analysis_s']:7.2f} s · start-up "
                  f"{run['startup_s']:.2f} s · database {run['database_s']:.2f} s · torch import "
                  f"{run['torch_import_s']:.2f} s · model "
                  f"load {run['model_load_s']:.2f} s · wall {run['wall_s']:.2f} s · people "
                  f"{run['people']}")
        print(f"  throughput under load: {r['throughput_under_load']} of the unloaded run's "
              f"(load average {q['load_average_before']} before, "
              f"{b['load_average_after']} at the end of the loaded run)")
    if len(loaded) == 2:
        shipped, before = loaded
        print("\nshipped against before, analysis time before / shipped: "
              f"{ratio(before['unloaded']['analysis_s'], shipped['unloaded']['analysis_s'])} "
              "without the loops, "
              f"{ratio(before['loaded']['analysis_s'], shipped['loaded']['analysis_s'])} with them")


if __name__ == "__main__":
    main()
