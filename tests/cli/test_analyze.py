"""`maskwatch analyze` end to end: real ffmpeg, MTCNN and CNN, numbers checked in SQL and report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from maskwatch.cli import app
from ml.footage import (
    expected_counts,
    make_blank_video,
    make_truncated_copy,
    render_composition,
)
from storage.models import FrameStat, Job, JobStatus

from .conftest import SEGMENTS

# A password, so that the test sees it is never printed.
POSTGRES_SERVER = "postgresql+psycopg://postgres:secret@127.0.0.1:5432"


def run_analyze(runner: CliRunner, db_url: str, *args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["analyze", *args, "--db", db_url, "--json"])
    report = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.exit_code, report


@pytest.mark.slow
def test_counts_per_second_reach_the_database_and_report(
    runner: CliRunner, db_url: str, composition_video: Path, session_for
) -> None:
    code, report = run_analyze(
        runner, db_url, str(composition_video), "--sample-fps", "1", "--camera", "gate-3"
    )

    assert code == 0, report
    expected = expected_counts(SEGMENTS, seconds_per_segment=2)
    masked = sum(m for m, _ in expected)
    unmasked = sum(u for _, u in expected)
    totals = dict(report["totals"])
    # people are counted beside the face-frames (tests/cli/test_people.py checks them)
    people = totals.pop("people")
    assert {"total", "masked", "unmasked", "incorrect", "compliance_ratio"} <= set(people)
    assert totals == {
        "frames": 8,
        "frames_with_faces": 8,
        "faces": masked + unmasked,
        "masked": masked,
        "unmasked": unmasked,
        "incorrect": 0,
        "compliance_ratio": round(masked / (masked + unmasked), 4),
    }
    job = report["jobs"][0]
    assert (job["status"], job["camera"], job["input"]) == (
        "succeeded",
        "gate-3",
        "composition.mp4",
    )
    # The worst moment is the one with two unmasked faces and none masked (seconds 2-3).
    assert job["worst_moments"][0]["unmasked"] == 2
    assert job["worst_moments"][0]["timestamp_s"] in (2.0, 3.0)

    with session_for() as session:
        rows = session.scalars(select(FrameStat).order_by(FrameStat.frame_index)).all()
        assert [r.frame_index for r in rows] == [0, 10, 20, 30, 40, 50, 60, 70]
        assert [r.timestamp_s for r in rows] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
        assert [(r.masked, r.unmasked) for r in rows] == expected
        stored = session.scalars(select(Job)).one()
        assert stored.status == JobStatus.SUCCEEDED
        assert (stored.frames_done, stored.frames_total) == (8, 8)


@pytest.mark.slow
def test_fast_runs_the_single_detector_and_the_job_records_it(
    runner: CliRunner, db_url: str, composition_video: Path, session_for
) -> None:
    code, report = run_analyze(runner, db_url, str(composition_video), "--sample-fps", "1",
                               "--fast")

    assert code == 0, report
    expected = expected_counts(SEGMENTS, seconds_per_segment=2)
    assert report["totals"]["masked"] == sum(m for m, _ in expected)
    assert report["totals"]["unmasked"] == sum(u for _, u in expected)
    with session_for() as session:
        stored = session.scalars(select(Job)).one()
        assert stored.settings["detector_weights"] == "mtcnn_finetuned.pt"


@pytest.mark.slow
def test_the_default_job_records_the_merged_detector(
    runner: CliRunner, db_url: str, tmp_path: Path, session_for
) -> None:
    image = tmp_path / "two.png"
    render_composition(1, 1, size=(320, 240)).save(image)
    code, report = run_analyze(runner, db_url, str(image))

    assert code == 0, report
    assert (report["totals"]["masked"], report["totals"]["unmasked"]) == (1, 1)
    with session_for() as session:
        stored = session.scalars(select(Job)).one()
        assert stored.settings["detector_weights"] == "mtcnn_finetuned.pt+mtcnn_union.pt"
        assert stored.settings["mirror_faces"] is True


@pytest.mark.slow
def test_human_report_names_the_numbers(
    runner: CliRunner, db_url: str, composition_video: Path
) -> None:
    result = runner.invoke(
        app, ["analyze", str(composition_video), "--sample-fps", "1", "--db", db_url]
    )
    assert result.exit_code == 0, result.output
    assert "faces 20" in result.output
    assert "compliance" in result.output and "60.0%" in result.output
    # start-up and model load apart from the analysis, on stderr (stdout is the report)
    assert re.search(
        r"start-up [\d.]+ s \(interpreter and CLI imports\) · database and jobs [\d.]+ s · "
        r"torch import [\d.]+ s · model load [\d.]+ s · analysis [\d.]+ s",
        result.stderr,
    ), result.stderr
    assert "start-up" not in result.stdout


def failed_job(session_for) -> Job:
    with session_for() as session:
        job = session.scalars(select(Job)).one()
        assert job.status == JobStatus.FAILED
        return job


def assert_fails(runner, db_url, session_for, path: Path, reason: str) -> None:
    code, report = run_analyze(runner, db_url, str(path))
    assert code == 1
    assert report["jobs"][0]["status"] == "failed"
    assert reason in report["jobs"][0]["error"]
    assert reason in failed_job(session_for).error


def test_missing_file(runner, db_url, session_for, tmp_path: Path) -> None:
    assert_fails(runner, db_url, session_for, tmp_path / "nope.mp4", "nope.mp4")


def test_empty_file(runner, db_url, session_for, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert_fails(runner, db_url, session_for, empty, "empty")


def test_text_file_named_mp4(runner, db_url, session_for, tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    assert_fails(runner, db_url, session_for, fake, "notes.mp4")


@pytest.mark.slow
def test_truncated_video(runner, db_url, session_for, composition_video, tmp_path) -> None:
    cut = make_truncated_copy(composition_video, tmp_path / "cut.mp4", 0.6)
    assert_fails(runner, db_url, session_for, cut, "cut.mp4")


def test_image_too_small_for_the_detector(runner, db_url, session_for, tmp_path) -> None:
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (12, 12), (200, 180, 160)).save(tiny)
    assert_fails(runner, db_url, session_for, tiny, "too small")


@pytest.mark.slow
def test_video_without_faces_succeeds_with_zero_faces(
    runner, db_url, session_for, tmp_path
) -> None:
    """Quiet hours of a CCTV archive: nobody appears, which is a result, not an error."""
    blank = make_blank_video(tmp_path / "empty-corridor.mp4", seconds=3)
    code, report = run_analyze(runner, db_url, str(blank))
    assert code == 0, report
    (job,) = report["jobs"]
    assert (job["status"], job["error"], job["frames"], job["faces"]) == (
        "succeeded", None, 15, 0
    )  # fmt: skip
    assert job["compliance_ratio"] is None
    with session_for() as session:
        assert len(session.scalars(select(FrameStat)).all()) == 15

    table = runner.invoke(app, ["analyze", str(blank), "--db", db_url])
    assert table.exit_code == 0, table.output
    assert "nobody appears: no faces in the 15 frame(s) analysed" in table.output


@pytest.mark.slow
def test_folder_with_good_and_bad_files(runner, db_url, session_for, tmp_path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    render_composition(1, 2).save(folder / "a-good.jpg")
    (folder / "b-bad.mp4").write_text("garbage")
    (folder / ".hidden.mp4").write_text("ignored")

    code, report = run_analyze(runner, db_url, str(folder))

    assert code == 1
    by_name = {job["input"]: job for job in report["jobs"]}
    assert set(by_name) == {"a-good.jpg", "b-bad.mp4"}
    # Labels are the classifier's business (test_counts_per_second... checks them); here the
    # point is that the good file is analysed in full beside the bad one.
    assert (by_name["a-good.jpg"]["status"], by_name["a-good.jpg"]["faces"]) == ("succeeded", 3)
    assert by_name["b-bad.mp4"]["status"] == "failed"
    assert "b-bad.mp4" in by_name["b-bad.mp4"]["error"]
    assert report["totals"]["faces"] == 3


@pytest.mark.slow
def test_hostile_file_name_is_analysed_as_a_file(
    runner, db_url, composition_video, tmp_path
) -> None:
    hostile = tmp_path / "-y; rm -rf ~ $(reboot)\n.mp4"
    hostile.write_bytes(composition_video.read_bytes())
    code, report = run_analyze(runner, db_url, str(hostile), "--sample-fps", "1")
    assert code == 0, report
    assert report["totals"]["faces"] == 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sample-fps", "0"], "error: sample_fps must be more than 0 and at most 120 frames"),
        (["--sample-fps", "nan"], "error: sample_fps must be more than 0 and at most 120 frames"),
        (["--sample-fps", "-1"], "error: sample_fps must be more than 0 and at most 120 frames"),
        (["--db", "mysql://x"], "error: unsupported database 'mysql': MaskWatch stores its"),
        (
            ["--db", f"{POSTGRES_SERVER}/maskwatch_no_such_database"],
            "error: cannot use the database postgresql+psycopg://postgres:***@127.0.0.1:5432/"
            'maskwatch_no_such_database: connection failed: connection to server at',
        ),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    runner, db_url, composition_video, args: list[str], message: str
) -> None:
    if "--db" not in args:
        args = [*args, "--db", db_url]
    result = runner.invoke(app, ["analyze", str(composition_video), *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output
    assert "secret" not in result.output  # the password is never shown
    if "--sample-fps" in args:  # refused before any database or job was made
        assert not Path(db_url.removeprefix("sqlite:///")).exists()


@pytest.mark.parametrize("command", [["db", "upgrade"], ["db", "current"]])
def test_db_commands_refuse_an_unsupported_database_in_one_line(
    runner, command: list[str]
) -> None:
    result = runner.invoke(app, [*command, "--db", "mysql://x"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: unsupported database 'mysql': MaskWatch stores its data in SQLite "
        "(sqlite:///PATH) or PostgreSQL (postgresql+psycopg://USER@HOST:5432/DB)"
    ]
