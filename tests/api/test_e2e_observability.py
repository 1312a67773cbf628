"""End to end: what an operator watches. Real `maskwatch serve` and `maskwatch worker`
processes on Redis and PostgreSQL run a generated clip; the API's /metrics and the worker's
exporter are scraped before and after, and the counters must move by what the job did; alert
webhooks reach a real receiver on 127.0.0.1 that is down when the job ends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from ml.footage import make_composition_video
from storage.db import upgrade
from tests.api.api_support import postgres_database
from tests.api.webhook_receiver import receiving
from tests.polling import wait_for
from tests.processes import Process, create_key, free_port, start, with_repo_path
from worker.pipeline.decode import iter_frames, probe

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REDIS_URL = os.environ.get("MASKWATCH_TEST_E2E_REDIS_URL", "redis://127.0.0.1:6379/6")
SITE = "obs-site"
SAMPLE_FPS = 2.0
SCENES = [(1, 1), (2, 0)]  # (masked, unmasked) faces in each 2-second scene
FRAMES = 8  # 4 s at 2 frames per second
FACES = 12
SEGMENTS = 2  # 4 s in segments of 2 s
START_TIMEOUT_S = 180.0
JOB_TIMEOUT_S = 240.0


@dataclass
class Stack:
    api_url: str
    worker_metrics_url: str
    key: str
    env: dict[str, str]
    processes: list[Process]

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} -----\n{p.log()[-4000:]}" for p in self.processes)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("obs-clip")
    return make_composition_video(folder / "corridor.mp4", SCENES, seconds_per_segment=2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`maskwatch serve` and a one-process `maskwatch worker` with its metrics exporter."""
    database_url = postgres_database("maskwatch_obs_e2e", recreate=True)
    upgrade(database_url)
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    work = tmp_path_factory.mktemp("obs")
    api_port, metrics_port = free_port(), free_port()
    env = {
        **with_repo_path(os.environ),
        "MASKWATCH_DATABASE_URL": database_url,
        "MASKWATCH_BROKER_URL": REDIS_URL,
        "MASKWATCH_UPLOAD_DIR": str(work / "uploads"),
        "MASKWATCH_SAMPLE_FPS": str(SAMPLE_FPS),
        "MASKWATCH_TORCH_THREADS": "1",
        "MASKWATCH_SEGMENT_SECONDS": "2",
        "MASKWATCH_DEVICE": "cpu",
        "MASKWATCH_DETECTOR_WEIGHTS": "mtcnn_finetuned.pt",  # one detector: half the time
        "MASKWATCH_API_URL": f"http://127.0.0.1:{api_port}",
        # The test's webhook receivers listen on 127.0.0.1.
        "MASKWATCH_ALERT_PRIVATE_TARGETS": "true",
        "MASKWATCH_ALERT_RETRY_BASE_S": "1",
    }
    for name in ("MASKWATCH_API_KEY", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    key = create_key(env, "obs", SITE)
    processes: list[Process] = []
    try:
        api = start("api", ["serve", "--port", str(api_port)], env, work)
        processes.append(api)
        worker = start(
            "worker",
            ["worker", "--concurrency", "1", "--hostname", "obs@%h",
             "--metrics-port", str(metrics_port)],
            env,
            work,
        )
        processes.append(worker)
        stack = Stack(
            f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{metrics_port}/metrics",
            key, env, processes,
        )

        def up() -> bool:
            api.check_alive()
            worker.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                return (
                    httpx.get(f"{stack.api_url}/healthz", timeout=2).status_code == 200
                    and httpx.get(stack.worker_metrics_url, timeout=2).status_code == 200
                    and " ready." in worker.log()
                    and "worker process" in worker.log()
                )
            return False

        wait_for(up, START_TIMEOUT_S, "the API, the worker and its exporter")
        yield stack
    finally:
        for process in processes:
            process.stop()
        broker.flushdb()
        broker.close()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and sorted labels."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def submit(stack: Stack, clip: Path, camera: str) -> dict[str, object]:
    with clip.open("rb") as stream:
        response = httpx.post(
            f"{stack.api_url}/v1/jobs",
            headers=stack.headers(),
            data={"camera": camera, "recorded_at": "2024-05-01T08:00:00Z"},
            files={"file": (clip.name, stream, "video/mp4")},
            timeout=60,
        )
    assert response.status_code == 201, response.text
    job: dict[str, object] = response.json()
    return job


def wait_finished(stack: Stack, job_id: object) -> dict[str, object]:
    found: dict[str, object] = {}

    def finished() -> bool:
        for process in stack.processes:
            process.check_alive()
        response = httpx.get(f"{stack.api_url}/v1/jobs/{job_id}", headers=stack.headers(),
                             timeout=10)
        found.update(response.json())
        return found["status"] in ("succeeded", "failed", "cancelled")

    wait_for(finished, JOB_TIMEOUT_S, f"job {job_id} to finish")
    return found


def test_api_and_worker_counters_move_when_a_job_runs(stack: Stack, clip: Path) -> None:
    api_before = scrape(f"{stack.api_url}/metrics")
    worker_before = scrape(stack.worker_metrics_url)
    assert value(worker_before, "maskwatch_backlog_up", source="database") == 1
    assert value(worker_before, "maskwatch_backlog_up", source="broker") == 1

    job = submit(stack, clip, "metrics-cam")
    job = wait_finished(stack, job["id"])
    assert job["status"] == "succeeded", f"{job}\n{stack.logs()}"
    summary = job["summary"]
    assert isinstance(summary, dict) and summary["frames"] == FRAMES

    api_after = scrape(f"{stack.api_url}/metrics")

    def api_moved(name: str, **labels: str) -> float:
        return value(api_after, name, **labels) - value(api_before, name, **labels)

    assert api_moved("maskwatch_http_requests_total", method="POST", route="/v1/jobs",
                     status="201") == 1
    assert api_moved("maskwatch_http_request_duration_seconds_count", method="POST",
                     route="/v1/jobs") == 1
    assert api_moved("maskwatch_http_requests_total", method="GET", route="/v1/jobs/{job_id}",
                     status="200") >= 1
    # No raw path, site or key ever becomes a label.
    page = httpx.get(f"{stack.api_url}/metrics", timeout=10).text
    assert str(job["id"]) not in page and SITE not in page and stack.key not in page

    worker_after = scrape(stack.worker_metrics_url)

    def moved(name: str, **labels: str) -> float:
        return value(worker_after, name, **labels) - value(worker_before, name, **labels)

    assert moved("maskwatch_frames_analysed_total") == FRAMES
    assert moved("maskwatch_faces_found_total") == summary["faces"]
    assert moved("maskwatch_jobs_finished_total", status="succeeded") == 1
    assert moved("maskwatch_segment_duration_seconds_count") == SEGMENTS
    assert moved("maskwatch_segment_duration_seconds_sum") > 0
    # One gauge per live process; the pool process that ran the segments has a rate.
    rates = [v for (name, _), v in worker_after.items()
             if name == "maskwatch_worker_frames_per_second"]
    assert max(rates) > 0
    assert moved("maskwatch_jobs", status="succeeded") == 1
    assert value(worker_after, "maskwatch_queue_depth", queue="analysis") == 0



def test_webhooks_reach_a_receiver_that_was_down_when_the_job_ended(
    stack: Stack, clip: Path
) -> None:
    port = free_port()  # nothing listens there until the receiver starts below
    url = f"http://127.0.0.1:{port}/hooks/maskwatch"
    rules = {}
    for kind, extra in (
        ("compliance_below", {"threshold_percent": 95, "window_minutes": 60}),
        ("job_finished", {}),
    ):
        response = httpx.post(
            f"{stack.api_url}/v1/alerts/rules", headers=stack.headers(), timeout=10,
            json={"kind": kind, "url": url, "camera": "alert-cam", **extra},
        )
        assert response.status_code == 201, response.text
        rules[kind] = response.json()

    job = wait_finished(stack, submit(stack, clip, "alert-cam")["id"])
    assert job["status"] == "succeeded", f"{job}\n{stack.logs()}"

    def deliveries() -> list[dict[str, object]]:
        response = httpx.get(f"{stack.api_url}/v1/alerts/deliveries", headers=stack.headers(),
                             timeout=10)
        assert response.status_code == 200, response.text
        return [d for d in response.json()["items"] if d["job_id"] == job["id"]]

    def all_tried_once() -> bool:
        found = deliveries()
        return len(found) == 2 and all(int(str(d["attempts"])) >= 1 for d in found)

    wait_for(all_tried_once, 60, f"two failed deliveries\n{stack.logs()}")
    assert all(d["status"] == "pending" and d["last_status_code"] is None for d in deliveries())

    with receiving(port=port) as receiver:
        wait_for(lambda: all(d["status"] == "delivered" for d in deliveries()), 60,
                 f"the deliveries to arrive\n{stack.logs()}")
    by_event = {m.json()["event"]: m for m in receiver.received}
    assert set(by_event) == {"compliance_below", "job_finished"}
    for kind, message in by_event.items():
        assert message.signed_by(rules[kind]["secret"])
        assert message.json()["job"]["id"] == job["id"]
    summary = job["summary"]
    assert isinstance(summary, dict)
    window = by_event["compliance_below"].json()["window"]
    assert (window["faces"], window["masked"]) == (summary["faces"], summary["masked"])
    for delivery in deliveries():
        log = delivery["log"]
        assert isinstance(log, list)
        assert log[0]["status_code"] is None and log[-1]["status_code"] == 200


def test_an_annotated_video_is_rendered_by_a_worker_and_downloaded(
    stack: Stack, clip: Path, tmp_path: Path
) -> None:
    job = wait_finished(stack, submit(stack, clip, "video-cam")["id"])
    assert job["status"] == "succeeded", f"{job}\n{stack.logs()}"
    base = f"{stack.api_url}/v1/jobs/{job['id']}/annotated-video"
    asked = httpx.post(base, headers=stack.headers(), timeout=10)
    assert asked.status_code == 202, asked.text
    assert (asked.json()["status"], asked.json()["blur_faces"]) == ("queued", True)

    video: dict[str, object] = {}

    def rendered() -> bool:
        for process in stack.processes:
            process.check_alive()
        video.update(httpx.get(base, headers=stack.headers(), timeout=10).json())
        return video["status"] in ("succeeded", "failed")

    wait_for(rendered, JOB_TIMEOUT_S, f"the annotated video\n{stack.logs()}")
    assert (video["status"], video["error"], video["frames"]) == ("succeeded", None, FRAMES)
    response = httpx.get(f"{stack.api_url}{video['download']}", headers=stack.headers(),
                         timeout=30)
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    out = tmp_path / "annotated.mp4"
    out.write_bytes(response.content)
    info = probe(out)
    assert (info.kind, info.codec, info.width, info.height) == ("video", "h264", 640, 360)
    assert len(list(iter_frames(info, sample_fps=None))) == FRAMES
