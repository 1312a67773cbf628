"""`maskwatch analyze` splits a long video over processes and counts the same people."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from maskwatch.cli import app
from ml.people_footage import SPLIT, SPLIT_PEOPLE, SPLIT_SECONDS, make_people_video
from storage.db import make_engine, make_session_factory
from storage.models import FrameStat, Track
from worker.local import MIN_SPLIT_S

pytestmark = pytest.mark.slow  # real models over generated video


def analyze(video: Path, db_url: str, processes: int) -> dict:
    result = CliRunner().invoke(
        app, ["analyze", str(video), "--db", db_url, "--json", "--processes", str(processes)]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_two_processes_count_the_people_one_process_counts(tmp_path: Path) -> None:
    video = make_people_video(tmp_path / "hall.mp4", SPLIT, SPLIT_SECONDS)
    assert SPLIT_SECONDS >= MIN_SPLIT_S  # or it would run whole and prove nothing
    split_db, whole_db = (f"sqlite:///{tmp_path / name}" for name in ("split.db", "whole.db"))
    split = analyze(video, split_db, 2)["jobs"][0]
    whole = analyze(video, whole_db, 1)["jobs"][0]

    assert split["status"] == whole["status"] == "succeeded"
    assert {k: split["people"][k] for k in SPLIT_PEOPLE} == SPLIT_PEOPLE
    assert split["people"] == whole["people"]
    face_frames = ("frames", "faces", "masked", "unmasked", "incorrect", "compliance_ratio")
    assert {k: split[k] for k in face_frames} == {k: whole[k] for k in face_frames}
    with make_session_factory(make_engine(split_db))() as session:
        # the second half was stored by another process, as segment 1
        newcomer = session.scalars(select(Track).order_by(Track.first_s.desc())).first()
        assert newcomer is not None and newcomer.segment_index == 1
        assert session.scalar(select(FrameStat.id).limit(1)) is not None
