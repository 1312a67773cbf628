"""End to end: `maskwatch serve` and `maskwatch worker` processes, Redis, PostgreSQL, the CLI.

Footage is generated with a known number of faces per second (ml/footage.py),
submitted with `maskwatch submit --wait` and through the API, analysed by a real worker, and
the numbers the API reports are checked against the composition and against the embedded
(in-process) analysis of the same file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from maskwatch.core.counts import FaceCounts
from maskwatch.core.labels import MASK_LABELS
from storage.db import make_engine, make_session_factory, upgrade
from storage.models import JobStatus
from storage.repositories import jobs as job_repo
from storage.repositories import reports as report_repo
from worker.jobs import run_job
from worker.pipeline.analyze import AnalysisSettings, load_models

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # ml.footage is imported from the repository root
    sys.path.insert(0, str(REPO_ROOT))

from ml.footage import make_composition_video, render_composition  # noqa: E402
from tests.api.api_support import postgres_database  # noqa: E402
from tests.db_support import add_video_job  # noqa: E402
from tests.polling import wait_for  # noqa: E402
from tests.processes import (  # noqa: E402
    Process,
    create_key,
    free_port,
    shipped_checkpoint,
    start,
    wait_for_api,
    with_repo_path,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

# A Redis database number of its own (the distributed tests use 5), flushed before and after.
REDIS_URL = os.environ.get("MASKWATCH_TEST_E2E_REDIS_URL", "redis://127.0.0.1:6379/6")
SAMPLE_FPS = 2.0
SECONDS_PER_SCENE = 2
SITE = "e2e-site"
START_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 240.0

# (masked, unmasked) faces on screen for each 2-second scene of each generated clip.
CLIPS: dict[str, list[tuple[int, int]]] = {
    "main": [(1, 1), (2, 0), (0, 2)],
    "a": [(2, 2), (1, 0)],
    "b": [(0, 1), (1, 2), (2, 1)],
    "c": [(3, 0)],
}



def expected_faces_per_frame(scenes: list[tuple[int, int]]) -> list[int]:
    """Faces in each sampled frame: one sample every 1/SAMPLE_FPS s from t = 0."""
    per_scene = int(SECONDS_PER_SCENE * SAMPLE_FPS)
    return [m + u for m, u in scenes for _ in range(per_scene)]


@dataclass
class Stack:
    api_url: str
    key: str
    env: dict[str, str]
    database_url: str
    processes: list[Process]

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} -----\n{p.log()[-4000:]}" for p in self.processes)


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return shipped_checkpoint()


@pytest.fixture(scope="module")
def e2e_database() -> str:
    url = postgres_database("maskwatch_api_e2e", recreate=True)
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("e2e-videos")
    return {
        name: make_composition_video(
            folder / f"clip-{name}.mp4", scenes, seconds_per_segment=SECONDS_PER_SCENE
        )
        for name, scenes in CLIPS.items()
    }


@pytest.fixture(scope="module")
def stack(
    checkpoint: Path, e2e_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """`maskwatch serve` and one `maskwatch worker` (2 pool processes) on Redis db 6."""
    broker = redis.Redis.from_url(REDIS_URL)
    try:
        broker.flushdb()
    except redis.exceptions.ConnectionError as error:
        pytest.fail(f"Redis unreachable at {REDIS_URL} ({error}); run scripts/ensure-services.sh")
    work = tmp_path_factory.mktemp("e2e")
    port = free_port()
    env = {
        **with_repo_path(os.environ),
        "MASKWATCH_DATABASE_URL": e2e_database,
        "MASKWATCH_BROKER_URL": REDIS_URL,
        "MASKWATCH_UPLOAD_DIR": str(work / "uploads"),
        "MASKWATCH_CHECKPOINT": str(checkpoint),
        "MASKWATCH_SAMPLE_FPS": str(SAMPLE_FPS),
        "MASKWATCH_TORCH_THREADS": "1",
        "MASKWATCH_SEGMENT_SECONDS": "4",
        "MASKWATCH_DEVICE": "cpu",
    }
    env.pop("MASKWATCH_API_KEY", None)
    key = create_key(env, "e2e", SITE)
    processes: list[Process] = []
    try:
        api = start("api", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, work)
        processes.append(api)
        worker = start(
            "worker",
            ["worker", "--concurrency", "2", "--hostname", "e2e@%h", "--loglevel", "INFO"],
            env,
            work,
        )
        processes.append(worker)
        api_url = f"http://127.0.0.1:{port}"

        def worker_up() -> bool:
            worker.check_alive()
            log = worker.log()
            return " ready." in log and log.count("worker process") >= 2

        wait_for_api(api, api_url, START_TIMEOUT_S)
        wait_for(worker_up, START_TIMEOUT_S, "the worker to load its models")
        yield Stack(api_url, key, env, e2e_database, processes)
    finally:
        for process in processes:
            process.stop()
        broker.flushdb()
        broker.close()


def reference_summary(stack: Stack, video: Path, checkpoint: Path) -> FaceCounts:
    """The embedded analysis of the same file, in this process (one torch thread too)."""
    analysis = AnalysisSettings(sample_fps=SAMPLE_FPS)
    engine = make_engine(stack.database_url)
    try:
        factory = make_session_factory(engine)
        with factory() as session:
            job_id = add_video_job(
                session, video, settings=analysis.to_dict(), site="reference", camera="local"
            ).id
            session.commit()
        run_job(factory, job_id, load_models(analysis, checkpoint, "cpu", threads=1))
        with factory() as session:
            job = job_repo.get_job(session, job_id)
            assert job is not None and job.status is JobStatus.SUCCEEDED, job and job.error
            return report_repo.job_summary(session, job_id)
    finally:
        engine.dispose()


def get(stack: Stack, path: str, **params: Any) -> Any:
    response = httpx.get(
        f"{stack.api_url}{path}",
        params=params,
        timeout=30,
        headers={"Authorization": f"Bearer {stack.key}"},
    )
    assert response.status_code == 200, response.text
    return response


def frame_faces(stack: Stack, job_id: str) -> list[int]:
    body = get(stack, f"/v1/jobs/{job_id}/frames", limit=1000).json()
    assert body["total"] == len(body["items"])
    for item in body["items"]:
        assert item["masked"] + item["unmasked"] + item["incorrect"] == item["faces"]
    return [item["faces"] for item in body["items"]]


def test_submit_wait_reports_the_footage_numbers(
    stack: Stack, videos: dict[str, Path], checkpoint: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "maskwatch.cli",
            "submit",
            str(videos["main"]),
            "--camera",
            "door",
            "--api",
            stack.api_url,
            "--wait",
            "--poll",
            "0.5",
            "--recorded-at",
            "2024-03-01T09:00:00Z",
        ],
        cwd=REPO_ROOT,
        env={**stack.env, "MASKWATCH_API_KEY": stack.key},
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_S,
    )
    assert result.returncode == 0, f"{result.stderr}\n{stack.logs()}"
    assert stack.key not in result.stdout + result.stderr
    job = json.loads(result.stdout)
    assert (job["status"], job["error"], job["site"]) == ("succeeded", None, SITE)

    expected = expected_faces_per_frame(CLIPS["main"])
    summary = job["summary"]
    assert summary["frames"] == len(expected) == job["progress"]["frames_done"]
    assert summary["faces"] == sum(expected) == 24
    assert summary["masked"] + summary["unmasked"] + summary["incorrect"] == summary["faces"]
    assert frame_faces(stack, job["id"]) == expected

    reference = reference_summary(stack, videos["main"], checkpoint)
    assert (summary["faces"], summary["masked"], summary["unmasked"], summary["incorrect"]) == (
        reference.faces,
        reference.masked,
        reference.unmasked,
        reference.incorrect,
    )

    # Footage from 09:00:00 to 09:00:06 UTC: one minute bucket holding every face and person.
    people = summary["people"]
    assert people["total"] > 0
    report = get(stack, "/v1/reports", bucket="minute", camera="door").json()
    assert report["items"] == [
        {
            "bucket_start": "2024-03-01T09:00:00Z",
            "faces": summary["faces"],
            "masked": summary["masked"],
            "unmasked": summary["unmasked"],
            "incorrect": summary["incorrect"],
            "compliance_ratio": summary["compliance_ratio"],
            "people": people["total"],
            "people_masked": people["masked"],
            "people_unmasked": people["unmasked"],
            "people_incorrect": people["incorrect"],
            "people_compliance_ratio": people["compliance_ratio"],
        }
    ]
    csv = httpx.get(
        f"{stack.api_url}/v1/reports",
        params={"bucket": "minute", "camera": "door"},
        headers={"Authorization": f"Bearer {stack.key}", "Accept": "text/csv"},
    )
    ratio, people_ratio = summary["compliance_ratio"], people["compliance_ratio"]
    assert csv.text == (
        "bucket_start,faces,masked,unmasked,incorrect,compliance_ratio,"
        "people,people_masked,people_unmasked,people_incorrect,people_compliance_ratio\r\n"
        f"2024-03-01T09:00:00Z,{summary['faces']},{summary['masked']},{summary['unmasked']},"
        f"{summary['incorrect']},{'' if ratio is None else f'{ratio:.4f}'},"
        f"{people['total']},{people['masked']},{people['unmasked']},{people['incorrect']},"
        f"{'' if people_ratio is None else f'{people_ratio:.4f}'}\r\n"
    )


def test_three_concurrent_jobs_keep_their_own_numbers(
    stack: Stack, videos: dict[str, Path]
) -> None:
    names = ["a", "b", "c"]
    # Job c asks for the fast detector: a worker builds it beside the default one.
    detectors = {"a": {}, "b": {"detector": "accurate"}, "c": {"detector": "fast"}}

    def submit(name: str) -> str:
        with videos[name].open("rb") as stream:
            response = httpx.post(
                f"{stack.api_url}/v1/jobs",
                headers={"Authorization": f"Bearer {stack.key}"},
                data={"camera": f"cam-{name}", **detectors[name]},
                files={"file": (videos[name].name, stream, "video/mp4")},
                timeout=60,
            )
        assert response.status_code == 201, response.text
        job_id: str = response.json()["id"]
        return job_id

    with ThreadPoolExecutor(max_workers=3) as pool:
        job_ids = dict(zip(names, pool.map(submit, names), strict=True))

    def all_finished() -> dict[str, Any] | None:
        for process in stack.processes:
            process.check_alive()
        jobs = {name: get(stack, f"/v1/jobs/{job_id}").json() for name, job_id in job_ids.items()}
        done = all(j["status"] in ("succeeded", "failed", "cancelled") for j in jobs.values())
        return jobs if done else None

    jobs = wait_for(all_finished, JOB_TIMEOUT_S, "three concurrent jobs to finish")
    for name, job in jobs.items():
        expected = expected_faces_per_frame(CLIPS[name])
        assert (job["status"], job["error"]) == ("succeeded", None), stack.logs()
        assert job["camera"] == f"cam-{name}"
        assert job["detector_weights"] == (
            "mtcnn_finetuned.pt" if name == "c" else "mtcnn_finetuned.pt+mtcnn_union.pt"
        )
        assert job["summary"]["frames"] == len(expected) == job["progress"]["frames_done"]
        assert job["summary"]["faces"] == sum(expected), name
        assert frame_faces(stack, job["id"]) == expected, name

    listed = get(stack, "/v1/jobs", status="succeeded", limit=100).json()
    assert set(job_ids.values()) <= {item["id"] for item in listed["items"]}


def test_classify_loads_the_real_models_once(stack: Stack, tmp_path: Path) -> None:
    still = tmp_path / "two-people.png"
    render_composition(1, 1).save(still)
    for _ in range(2):
        with still.open("rb") as stream:
            response = httpx.post(
                f"{stack.api_url}/v1/classify",
                headers={"Authorization": f"Bearer {stack.key}"},
                files={"file": (still.name, stream, "image/png")},
                timeout=120,
            )
        assert response.status_code == 200, f"{response.text}\n{stack.logs()}"
        faces = response.json()["faces"]
        assert len(faces) == 2
        for face in faces:
            assert set(face) == {"box", "label", "score"}
            assert face["label"] in MASK_LABELS and 0 < face["score"] <= 1
            x1, y1, x2, y2 = face["box"]
            assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 360
    api_log = next(p for p in stack.processes if p.name == "api").log()
    assert api_log.count("loading the detector and classifier for /v1/classify") == 1
    assert stack.key not in api_log
