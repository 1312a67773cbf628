"""The dashboard in a real browser: Debian's chromium driven by Playwright against a real
`maskwatch serve` process. Signs in with a site key, opens every page, checks the chart's
numbers against the API's, watches a job's progress change without a reload, and takes one
screenshot per page (MASKWATCH_UI_SCREENSHOTS=docs/img writes them for the README).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright import sync_api as playwright_api

from maskwatch.core.records import FrameRecord
from maskwatch.settings import Settings
from ml.footage import make_composition_video
from storage.db import make_engine, make_session_factory, upgrade
from storage.models import JobStatus
from storage.repositories import api_keys as key_repo
from storage.repositories import frames as frame_repo
from storage.repositories import jobs as job_repo
from tests.api.api_support import frame
from tests.db_support import add_video_job, settle_job
from tests.processes import Process, free_port, start, wait_for_api, with_repo_path
from worker.jobs import run_job
from worker.pipeline.analyze import AnalysisSettings, load_models
from worker.pipeline.config import FAST_DETECTOR_WEIGHTS

CHROMIUM = "/usr/bin/chromium"
SITE = "plant"
START_TIMEOUT_S = 60.0

pytestmark = [pytest.mark.slow]


@dataclass
class Site:
    url: str
    key: str
    other_key: str
    database_url: str
    running_job: str
    gate_jobs: list[str]
    lobby_job: str
    process: Process

    def api(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10,
                             headers={"Authorization": f"Bearer {self.key}"})
        assert response.status_code == 200, response.text
        return response.json()


def shift_frames(count: int, step_s: float, masked_of: Any) -> list[FrameRecord]:
    """``count`` frames ``step_s`` apart; masked_of(i) gives (masked, unmasked) of frame i."""
    return [frame(i, i * step_s, *masked_of(i)) for i in range(count)]


def seed(database_url: str) -> dict[str, Any]:
    """Plant's gate: three shifts of footage with falling compliance; dock: one; a running job;
    a failed one; and another site's camera that plant's key must never see."""
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    try:
        with factory() as session:
            _, key = key_repo.create_api_key(session, "safety-officer", site=SITE)
            _, other = key_repo.create_api_key(session, "elsewhere", site="other")

            def job(site: str, camera: str, hour: int, frames: list[FrameRecord],
                    status: JobStatus = JobStatus.SUCCEEDED) -> str:
                created = add_video_job(
                    session, "/nonexistent/in.mp4", site=site, camera=camera,
                    input_name=f"{camera}-{hour:02d}00.mp4", settings={"sample_fps": 1.0},
                    recorded_at=datetime(2024, 3, 1, hour, 0, tzinfo=UTC),
                )
                settle_job(session, created, status, frames, frames_total=max(len(frames), 20),
                           error="night.mp4: no frame could be decoded")
                return created.id

            gate = [
                job(SITE, "gate", 7, shift_frames(120, 60, lambda i: (3, 0 if i % 4 else 1))),
                job(SITE, "gate", 10, shift_frames(120, 60, lambda i: (2, 1 if i % 2 else 0))),
                job(SITE, "gate", 14, shift_frames(120, 60, lambda i: (1, 2 if i % 3 else 1))),
            ]
            job(SITE, "dock", 9, shift_frames(60, 60, lambda i: (2, 0)))
            running = job(SITE, "dock", 16, shift_frames(5, 1, lambda i: (1, 1)),
                          status=JobStatus.RUNNING)
            job(SITE, "yard", 12, [], status=JobStatus.FAILED)
            job("other", "secret-cam", 9, shift_frames(10, 60, lambda i: (0, 3)))
            session.commit()
            return {"key": key, "other": other, "running": running, "gate": gate}
    finally:
        engine.dispose()


def analysed_upload(database_url: str, uploads: Path) -> str:
    """The lobby camera's job: real footage (fixture faces) in the upload folder, analysed
    in this process by the real detector and classifier, so its stills show real faces."""
    uploads.mkdir(parents=True, exist_ok=True)
    video = make_composition_video(uploads / "9f1c2e.mp4", [(1, 1), (0, 2), (2, 1)])
    analysis = AnalysisSettings(sample_fps=2.0, detector_weights=FAST_DETECTOR_WEIGHTS)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    try:
        with factory() as session:
            job_id = add_video_job(
                session, video, site=SITE, camera="lobby", input_name="lobby-0800.mp4",
                settings=analysis.to_dict(), recorded_at=datetime(2024, 3, 1, 8, 0, tzinfo=UTC),
            ).id
            session.commit()
        checkpoint = Settings().checkpoint
        job = run_job(factory, job_id, load_models(analysis, checkpoint, "cpu", threads=1))
        assert job.status is JobStatus.SUCCEEDED, job.error
        return job_id
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("ui")
    database_url = f"sqlite:///{work / 'ui.sqlite3'}"
    upgrade(database_url)
    seeded = seed(database_url)
    lobby = analysed_upload(database_url, work / "uploads")
    port = free_port()
    env = {
        **with_repo_path(os.environ),
        "MASKWATCH_DATABASE_URL": database_url,
        "MASKWATCH_UPLOAD_DIR": str(work / "uploads"),
        "MASKWATCH_BROKER_URL": "redis://127.0.0.1:1/0",  # nothing is submitted here
    }
    process = start("api", ["serve", "--port", str(port)], env, work)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_api(process, url, START_TIMEOUT_S)
        yield Site(url, seeded["key"], seeded["other"], database_url, seeded["running"],
                   seeded["gate"], lobby, process)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: scripts/setup.sh installs Debian's chromium")
    with playwright_api.sync_playwright() as playwright:
        # --no-sandbox: CI and the test machines run as root, where chromium's sandbox refuses.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    opened.errors = errors  # tests take out the refusals they asked for
    yield opened
    context.close()
    assert errors == []  # no script error, no resource refused by the CSP


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def screenshot(page: Any, shots: Path, name: str) -> None:
    path = shots / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("MASKWATCH_UI_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def sign_in(page: Any, site: Site, key: str) -> None:
    page.goto(f"{site.url}/ui/")
    assert page.url.endswith("/ui/login")
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")


def test_sign_in_refuses_a_wrong_key_and_signs_out(page: Any, site: Site, shots: Path) -> None:
    page.goto(f"{site.url}/ui/sites")
    assert page.url.endswith("/ui/login")  # not signed in: sent to the form
    screenshot(page, shots, "login")
    sign_in(page, site, "mw_not-a-key")
    assert page.locator("[role=alert]").inner_text() == "invalid or revoked API key"
    assert page.errors.pop() == (
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    )
    sign_in(page, site, site.key)
    assert page.url.endswith("/ui/sites")
    assert "safety-officer · site plant" in page.locator("header").inner_text()
    page.click("text=Sign out")
    assert page.url.endswith("/ui/login")
    page.goto(f"{site.url}/ui/jobs")
    assert page.url.endswith("/ui/login")


def test_sites_page_lists_the_keys_cameras_with_the_latest_jobs_compliance(
    page: Any, site: Site, shots: Path
) -> None:
    sign_in(page, site, site.key)
    rows = page.locator("#cameras tbody tr")
    assert [rows.nth(i).get_attribute("data-camera") for i in range(rows.count())] == [
        "dock", "gate", "lobby", "yard"
    ]
    assert "secret-cam" not in page.content()
    latest_gate = site.api(f"/v1/jobs/{site.gate_jobs[-1]}")["summary"]
    gate = page.locator("#cameras tr[data-camera=gate]")
    assert float(gate.get_attribute("data-ratio")) == pytest.approx(
        latest_gate["compliance_ratio"], abs=1e-4
    )
    assert f"{latest_gate['compliance_ratio'] * 100:.1f} %" in gate.inner_text()
    # People beside face-frames: the lobby's job was analysed for real, so it has tracks.
    lobby_people = site.api(f"/v1/jobs/{site.lobby_job}")["summary"]["people"]
    lobby = page.locator("#cameras tr[data-camera=lobby]")
    assert lobby_people["total"] > 0
    assert lobby.locator(".people").inner_text() == str(lobby_people["total"])
    assert float(lobby.get_attribute("data-people-ratio")) == pytest.approx(
        lobby_people["compliance_ratio"], abs=1e-4
    )
    screenshot(page, shots, "sites")


def test_camera_chart_shows_the_apis_numbers_and_marks_the_worst_hours(
    page: Any, site: Site, shots: Path
) -> None:
    sign_in(page, site, site.key)
    page.click("#cameras tr[data-camera=gate] a >> nth=0")
    page.select_option("select[name=bucket]", "hour")
    page.click("form.filters button")
    page.wait_for_selector("#compliance-chart")
    drawn = page.evaluate(
        """() => { const chart = Chart.getChart('compliance-chart');
                   return {labels: chart.data.labels, percent: chart.data.datasets[0].data,
                           faces: chart.data.datasets[1].data,
                           people: chart.data.datasets[2].data}; }"""
    )
    report = site.api("/v1/reports", site=SITE, camera="gate", bucket="hour")["items"]
    assert drawn["labels"] == [b["bucket_start"] for b in report]
    assert drawn["faces"] == [b["faces"] for b in report]
    assert drawn["percent"] == pytest.approx([b["compliance_ratio"] * 100 for b in report],
                                             abs=0.01)
    assert drawn["people"] == [  # the seeded gate jobs have frames but no tracks
        None if b["people_compliance_ratio"] is None else b["people_compliance_ratio"] * 100
        for b in report
    ]
    assert [int(n) for n in page.locator("#buckets tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.people)")] == [b["people"] for b in report]
    worst_rows = page.locator("#buckets tr.worst")
    worst = sorted(report, key=lambda b: b["compliance_ratio"])[:3]
    assert sorted(worst_rows.nth(i).get_attribute("data-start") for i in range(3)) == sorted(
        b["bucket_start"] for b in worst
    )
    assert page.locator("#worst li").count() == 3
    screenshot(page, shots, "camera")

    page.select_option("select[name=bucket]", "minute")
    page.click("form.filters button")
    page.wait_for_selector("#compliance-chart")
    minutes = page.evaluate("() => Chart.getChart('compliance-chart').data.labels.length")
    assert minutes == len(site.api("/v1/reports", site=SITE, camera="gate", bucket="minute")
                          ["items"])


def test_job_list_progress_moves_without_a_reload(page: Any, site: Site, shots: Path) -> None:
    sign_in(page, site, site.key)
    page.goto(f"{site.url}/ui/jobs")
    running = page.locator(f"#jobs tr[data-job='{site.running_job}']")
    assert running.locator(".frames").inner_text() == "5/20"
    assert running.get_attribute("data-status") == "running"
    assert page.locator("#jobs tbody tr").count() == 7
    screenshot(page, shots, "jobs")

    # A worker stores more frames, then finishes: the open page follows by itself.
    engine = make_engine(site.database_url)
    try:
        with make_session_factory(engine)() as session:
            job = job_repo.get_job(session, site.running_job)
            assert job is not None
            frame_repo.replace_frames(session, job, shift_frames(20, 1, lambda i: (1, 1)))
            job_repo.add_progress(session, job.id, 15)
            job_repo.mark_succeeded(session, job)
            session.commit()
    finally:
        engine.dispose()
    page.wait_for_function(
        f"""() => document.querySelector("tr[data-job='{site.running_job}']")
                 .dataset.status === 'succeeded'""",
        timeout=15_000,
    )
    assert running.locator(".frames").inner_text() == "20/20"
    assert running.locator(".compliance").inner_text() == "50.0 %"
    assert running.locator(".people").inner_text() == "0"  # seeded frames, no tracks
    assert running.locator(".people-compliance").inner_text() == "-"


def test_job_page_shows_the_apis_totals_and_its_timeline(
    page: Any, site: Site, shots: Path
) -> None:
    sign_in(page, site, site.key)
    job_id = site.gate_jobs[0]
    page.goto(f"{site.url}/ui/jobs")
    page.click(f"#jobs tr[data-job='{job_id}'] a")
    assert page.url.endswith(f"/ui/jobs/{job_id}")
    summary = site.api(f"/v1/jobs/{job_id}")["summary"]
    cells = page.locator("#summary tbody td").all_inner_texts()
    counts = ("frames", "frames_with_faces", "faces", "masked", "unmasked", "incorrect")
    assert cells[:6] == [str(summary[k]) for k in counts]
    drawn = page.evaluate(
        "() => Chart.getChart('compliance-chart').data.datasets[1].data.reduce((a, b) => a + b)"
    )
    assert drawn == summary["faces"]
    assert page.locator("#worst-frames tbody tr").count() == 5
    # Its footage was never uploaded (seeded rows): no stills, and the page says why.
    assert page.locator(".stills img").count() == 0
    assert "footage is no longer kept" in page.locator("main").inner_text()

    # Another site's job is not there for this key, in the dashboard as in the API.
    other = httpx.get(f"{site.url}/v1/jobs", headers={"Authorization": f"Bearer {site.other_key}"},
                      timeout=10).json()["items"][0]["id"]
    # With the page's cookie, outside the page (a 404 document would log a console error).
    assert page.request.get(f"{site.url}/ui/jobs/{other}").status == 404
    assert page.request.get(f"{site.url}/ui/jobs/{job_id}").status == 200


def test_job_page_shows_blurred_stills_of_its_worst_moments(
    page: Any, site: Site, shots: Path
) -> None:
    sign_in(page, site, site.key)
    page.goto(f"{site.url}/ui/jobs/{site.lobby_job}")
    worst = page.locator("#worst-frames tbody tr").count()
    stills = page.locator(".stills img")
    assert worst >= 1 and stills.count() == worst
    page.wait_for_function(
        "() => [...document.querySelectorAll('.stills img')]"
        ".every(img => img.complete && img.naturalWidth === 640)"
    )
    assert "Faces are blurred" in page.locator("main").inner_text()
    summary = site.api(f"/v1/jobs/{site.lobby_job}")["summary"]
    assert page.locator("#summary tbody td").nth(2).inner_text() == str(summary["faces"])
    people = page.locator("#people tbody td").all_inner_texts()
    assert people[:4] == [str(summary["people"][k])
                          for k in ("total", "masked", "unmasked", "incorrect")]
    tracks = site.api(f"/v1/jobs/{site.lobby_job}/tracks")["items"]
    rows = page.locator("#tracks tbody tr")
    assert [(rows.nth(i).get_attribute("data-track"), rows.nth(i).get_attribute("data-label"))
            for i in range(rows.count())] == [(str(t["track_id"]), t["label"]) for t in tracks]
    screenshot(page, shots, "job")
