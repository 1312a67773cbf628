"""`maskwatch analyze` counts people: generated clips of known people, real MTCNN and CNN."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from maskwatch.cli import app
from ml.people_footage import (
    CROSSING,
    CROSSING_SECONDS,
    VISITS,
    VISITS_PEOPLE,
    VISITS_SECONDS,
    make_people_video,
)
from storage.models import Job, Track

pytestmark = pytest.mark.slow  # real models over generated video

SAMPLE_PERIOD_S = 0.2  # the default 5 samples a second


@pytest.fixture(scope="module")
def people_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """Both people clips analysed in one run (the models load once): report and database."""
    folder = tmp_path_factory.mktemp("people")
    make_people_video(folder / "clips" / "visits.mp4", VISITS, VISITS_SECONDS)
    make_people_video(folder / "clips" / "crossing.mp4", CROSSING, CROSSING_SECONDS)
    db_url = f"sqlite:///{folder / 'maskwatch.sqlite3'}"
    result = CliRunner().invoke(
        app, ["analyze", str(folder / "clips"), "--db", db_url, "--json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), db_url


def job_of(report: dict, name: str) -> dict:
    (job,) = [job for job in report["jobs"] if job["input"] == name]
    return job


def tracks_of(session_for, name: str) -> list[Track]:  # type: ignore[no-untyped-def]
    with session_for() as session:
        job = session.scalars(select(Job).where(Job.input_name == name)).one()
        return list(
            session.scalars(select(Track).where(Track.job_id == job.id).order_by(Track.track_index))
        )


@pytest.fixture
def session_for(people_report: tuple[dict, str]):  # type: ignore[no-untyped-def]
    from storage.db import make_engine, make_session_factory

    return make_session_factory(make_engine(people_report[1]))


def test_people_entering_staying_leaving_and_masking_up_are_each_counted_once(
    people_report: tuple[dict, str],
) -> None:
    report, _ = people_report
    people = job_of(report, "visits.mp4")["people"]
    assert {key: people[key] for key in VISITS_PEOPLE} == VISITS_PEOPLE
    assert people["incorrect"] == 0
    assert people["compliance_ratio"] == 0.75
    # face-frames stay beside the people, named as before: four faces over many frames
    assert job_of(report, "visits.mp4")["faces"] > 4 * VISITS_SECONDS


def test_a_person_continuously_visible_is_one_track(people_report, session_for) -> None:
    tracks = tracks_of(session_for, "visits.mp4")
    assert len(tracks) == 4
    # the one who stays all along, and the one who masks up on the right, in place
    whole = [t for t in tracks if t.first_s <= 2 * SAMPLE_PERIOD_S and t.last_s >= 7.6]
    assert len(whole) == 2
    masks_up = max(whole, key=lambda t: t.x1)
    # unmasked for the first 2.5 s, masked after: both stretches on one track. The vote
    # follows a change once most of its window (7 readings, 1.4 s) agrees: up to ~1 s late.
    assert masks_up.seconds_unmasked == pytest.approx(2.5 + 0.5, abs=0.7)
    assert masks_up.seconds_masked == pytest.approx(VISITS_SECONDS - 2.5 - 0.5, abs=0.7)
    assert masks_up.label == "with_mask"
    late = max(tracks, key=lambda t: t.first_s)
    assert late.first_s == pytest.approx(5.0, abs=0.5) and late.label == "with_mask"


def test_two_people_crossing_stay_two_people(people_report, session_for) -> None:
    report, _ = people_report
    people = job_of(report, "crossing.mp4")["people"]
    assert (people["total"], people["masked"], people["unmasked"]) == (2, 1, 1)
    tracks = tracks_of(session_for, "crossing.mp4")
    # each walked the whole clip and kept their own label through the crossing
    assert all(t.last_s - t.first_s >= CROSSING_SECONDS - 0.8 for t in tracks)
    assert sorted(t.seconds_masked > 0 for t in tracks) == [False, True]


def test_totals_add_up_people(people_report: tuple[dict, str]) -> None:
    report, _ = people_report
    totals = report["totals"]["people"]
    assert (totals["total"], totals["masked"], totals["unmasked"]) == (6, 4, 2)
    assert totals["compliance_ratio"] == round(4 / 6, 4)
