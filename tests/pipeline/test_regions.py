"""Sparse detection: frames detected only where they changed give the exhaustive answers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ml.people_footage import (
    PANNING,
    PANNING_SECONDS,
    SPLIT,
    SPLIT_PEOPLE,
    SPLIT_SECONDS,
    Person,
    make_panning_video,
    make_people_video,
)
from storage.models import FaceDetection, FrameStat, JobStatus, Track
from storage.repositories import jobs as job_repo
from storage.repositories import reports as report_repo
from storage.repositories import tracks as track_repo
from tests.db_support import add_video_job
from tests.pipeline.pipeline_support import CountingDetector
from worker.jobs import Segment, analyze_segment, finish_job, run_job
from worker.pipeline import detect as detect_module
from worker.pipeline.analyze import AnalysisSettings, Models
from worker.pipeline.detect import MergedDetector
from worker.pipeline.gating import CELL_PX, MAX_CARRIED, MotionGate
from worker.pipeline.regions import (
    MARGIN_PX,
    SEARCH_EVERY,
    SparsePlanner,
    changed_regions,
    outside,
)

# --- planning, no models ---


def scene(corner: int | None = None, value: int = 100) -> np.ndarray:
    image = np.full((360, 640, 3), value, np.uint8)
    if corner is not None:
        image[200:260, 400:450] = corner  # someone stepping into one part of the scene
    return image


def test_regions_surround_the_moved_cells_and_any_face_they_touch() -> None:
    changed = np.zeros((6, 10), bool)
    changed[3, 6] = True  # cell (row 3, column 6): pixels x 384-448, y 192-256
    alone = changed_regions(changed, np.zeros((0, 4)), 640, 360)
    assert alone == [(6 * CELL_PX - MARGIN_PX, 3 * CELL_PX - MARGIN_PX,
                      7 * CELL_PX + MARGIN_PX, 4 * CELL_PX + MARGIN_PX)]
    # a face whose box reaches into the region is wholly inside it; one far away is not
    faces = np.array([[440.0, 250.0, 540.0, 350.0], [20.0, 20.0, 100.0, 100.0]])
    (rect,) = changed_regions(changed, faces, 640, 360)
    assert rect[0] <= 440 and rect[1] <= 250 and rect[2] >= 540 and rect[3] >= 350
    assert outside(faces, [rect]).tolist() == [False, True]


def test_planner_carries_still_frames_detects_changed_parts_and_follows_a_moving_scene() -> None:
    following = 3
    planner = SparsePlanner(MotionGate(0.2), follow_every=following)
    none = np.zeros((0, 4), np.float32)
    face = np.array([[100.0, 100.0, 160.0, 170.0]], np.float32)
    assert planner.plan(scene(), 0.0, None).mode == "analysed"  # the first frame
    assert planner.plan(scene(), 0.2, none).mode == "carried"
    tracked = planner.plan(scene(corner=220), 0.4, none)
    assert tracked.mode == "tracked" and not tracked.follow
    assert not tracked.search  # sample 2: known faces there would be followed, not searched
    ((x1, y1, x2, y2),) = tracked.rects
    assert x1 <= 400 and y1 <= 200 and x2 >= 450 and y2 >= 260
    assert (x2 - x1) * (y2 - y1) < 640 * 360 / 4  # a small part of the frame
    # the reference moved on where it was detected: the same frame again is still
    assert planner.plan(scene(corner=220), 0.6, none).mode == "carried"
    # the whole scene changes (a pan, the lights): the last face is followed, and the
    # whole frame detected every 3rd frame so followed
    modes = []
    for i in range(2 * following):
        plan = planner.plan(scene(value=120 + 10 * i), 0.8 + 0.2 * i, face)
        modes.append(plan.mode)
        if plan.mode == "tracked":
            assert plan.follow and len(plan.rects) == 1
            assert plan.rects[0][0] < 100 and plan.rects[0][2] > 160
    assert modes.count("analysed") == 2 and modes[following - 1] == "analysed"
    # by default (FOLLOW_EVERY) a moving scene is detected in full
    default = SparsePlanner(MotionGate(0.2))
    assert default.plan(scene(), 0.2, None).mode == "analysed"
    assert default.plan(scene(value=140), 0.4, face).mode == "analysed"
    # the moved part holding known faces is searched on the absolute grid of SEARCH_EVERY
    searched = SparsePlanner(MotionGate(0.2))
    searched.plan(scene(), 0.0, None)
    plans = [searched.plan(scene(corner=120 + 20 * (i % 2)), 0.2 * i, face)
             for i in range(1, 2 * SEARCH_EVERY)]
    assert {plan.mode for plan in plans} == {"tracked"}
    assert [i for i, plan in enumerate(plans, 1) if plan.search] == [SEARCH_EVERY]
    # a forced grid sample is detected in full however still the scene
    assert planner.plan(scene(value=170), MAX_CARRIED * 0.2, face).mode == "analysed"


# --- real models on generated footage ---


def new_job(factory: sessionmaker[Session], video: Path, exhaustive: bool = False) -> str:
    with factory() as session:
        settings = AnalysisSettings(exhaustive=exhaustive).to_dict()
        job_id = add_video_job(session, video, settings=settings).id
        session.commit()
    return job_id


def outcome(factory: sessionmaker[Session], job_id: str):  # type: ignore[no-untyped-def]
    with factory() as session:
        job = job_repo.get_job(session, job_id)
        assert job is not None and job.status is JobStatus.SUCCEEDED, job and job.error
        frames = session.execute(
            select(FrameStat.frame_index, FrameStat.mode, FrameStat.faces, FrameStat.masked,
                   FrameStat.unmasked).where(FrameStat.job_id == job_id)
            .order_by(FrameStat.frame_index)
        ).all()
        boxes = session.execute(
            select(FaceDetection.frame_index, FaceDetection.x1, FaceDetection.y1,
                   FaceDetection.label).where(FaceDetection.job_id == job_id)
            .order_by(FaceDetection.frame_index, FaceDetection.x1)
        ).all()
        tracks = session.execute(
            select(Track.first_frame_index, Track.last_frame_index, Track.label,
                   Track.seconds_seen, Track.readings).where(Track.job_id == job_id)
            .order_by(Track.first_frame_index, Track.last_frame_index)
        ).all()
        return {
            "frames": [tuple(r) for r in frames],
            "boxes": [tuple(r) for r in boxes],
            "tracks": [tuple(r) for r in tracks],
            "summary": report_repo.job_summary(session, job_id),
            "people": track_repo.people_summary(session, job_id),
        }


def run(factory: sessionmaker[Session], video: Path, models: Models, exhaustive: bool):  # type: ignore[no-untyped-def]
    job_id = new_job(factory, video, exhaustive)
    counting = CountingDetector(models.detector)
    run_job(factory, job_id, replace(models, detector=counting))  # type: ignore[arg-type]
    return counting, outcome(factory, job_id)


# One person walks across the left of a fixed camera's 720p frame, pauses, walks back.
CORNER_WALK = [
    Person("without_mask", 0.5, 7.5, [(0.0, (60.0, 80.0)), (3.0, (300.0, 120.0)),
                                      (4.0, (300.0, 120.0)), (7.0, (80.0, 100.0))],
           face=0, height_px=140),
]


@pytest.mark.slow
def test_a_person_walking_in_part_of_a_fixed_scene_is_detected_in_regions(
    factory: sessionmaker[Session], models: Models, tmp_path: Path
) -> None:
    video = make_people_video(tmp_path / "corner.mp4", CORNER_WALK, 8.0, size=(1280, 720))
    sparse, got = run(factory, video, models, exhaustive=False)
    full, reference = run(factory, video, models, exhaustive=True)
    modes = [frame[1] for frame in got["frames"]]
    assert len(modes) == len(reference["frames"]) == 40  # every sampled frame keeps its row
    assert modes.count("tracked") > modes.count("analysed")
    assert sparse.region_calls == modes.count("tracked")
    assert sparse.frames == modes.count("analysed")
    assert sparse.pixels * 4 < full.pixels  # far fewer pixels searched
    # most tracked frames follow the known face with RNet/ONet, no PNet pyramid
    assert sparse.faces_followed > 0
    assert sparse.searched_calls * 2 < sparse.region_calls
    assert got["people"] == reference["people"]
    assert (got["people"].total, got["people"].unmasked) == (1, 1)
    # the same faces in the same frames
    assert [f[2:] for f in got["frames"]] == [f[2:] for f in reference["frames"]]


@pytest.mark.slow
def test_a_panning_camera_still_finds_the_faces(
    factory: sessionmaker[Session], models: Models, tmp_path: Path
) -> None:
    video = make_panning_video(tmp_path / "pan.mp4", PANNING, PANNING_SECONDS)
    sparse, got = run(factory, video, models, exhaustive=False)
    full, reference = run(factory, video, models, exhaustive=True)
    modes = [frame[1] for frame in got["frames"]]
    # the whole frame moves: nothing is carried, nor searched only in the moved cells
    assert set(modes) == {"analysed"} and sparse.frames == full.frames
    # the same frames, faces, tracks and people; a settled track is read less often
    # (worker/pipeline/track.py), so only the readings behind each track differ
    readings = [track[-1] for track in got["tracks"]]
    assert all(r <= ref[-1] for r, ref in zip(readings, reference["tracks"], strict=True))
    got["tracks"] = [track[:-1] for track in got["tracks"]]
    reference["tracks"] = [track[:-1] for track in reference["tracks"]]
    assert got == reference
    people = ("total", "masked", "unmasked", "incorrect")
    assert [getattr(got["people"], k) for k in people] == [3, 2, 1, 0]


@pytest.mark.slow
def test_segments_give_one_runs_rows_and_tracks_with_tracked_frames(
    factory: sessionmaker[Session], models: Models, tmp_path: Path
) -> None:
    video = make_people_video(tmp_path / "hall.mp4", SPLIT, SPLIT_SECONDS)
    whole_id, split_id = new_job(factory, video), new_job(factory, video)
    run_job(factory, whole_id, models)
    with factory() as session:
        job = job_repo.get_job(session, split_id)
        assert job is not None
        job_repo.mark_running(session, job, None)
        session.commit()
        for part in (Segment(0.0, 10.0, 0), Segment(10.0, None, 1)):
            analyze_segment(session, job, models, part)
        finish_job(session, job)
        session.commit()
    whole, split = outcome(factory, whole_id), outcome(factory, split_id)
    modes = [frame[1] for frame in whole["frames"]]
    assert modes.count("tracked") >= 10  # the case this test is about
    assert split == whole
    assert {k: getattr(whole["people"], k) for k in SPLIT_PEOPLE} == SPLIT_PEOPLE


@pytest.mark.slow
@pytest.mark.parametrize("size", [(1280, 720), (400, 225)])  # the small one is enlarged
def test_a_region_finds_the_face_the_whole_frame_finds_there(
    models: Models, size: tuple[int, int]
) -> None:
    from ml.people_footage import render_people

    scale = size[0] / 1280
    person = Person("with_mask", 0.0, 1.0, [(0.0, (500 * scale, 200 * scale))],
                    face=1, height_px=round(140 * scale))
    image = np.asarray(render_people([person], 0.5, size))
    detector = models.detector
    assert isinstance(detector, MergedDetector)
    (whole,) = detector.detect([image])
    assert len(whole) == 1
    x1, y1, x2, y2 = whole.xyxy[0]
    rect = (int(x1) - 40, int(y1) - 40, int(x2) + 40, int(y2) + 40)
    second = detector._cascades[1]
    calls = []
    original = second.detect_prepared
    second.detect_prepared = lambda *a: calls.append(1) or original(*a)  # type: ignore[method-assign]
    try:
        both = detector.detect_regions(image, [rect])  # someone new: every detector
        assert len(calls) == 1
        first_only = detector.detect_regions(image, [rect], expected=[1])  # found again
        assert len(calls) == 1
    finally:
        del second.detect_prepared
    # the face known a step to the left (last frame): followed, no PNet pyramid runs;
    # known in the wrong place (nothing there): following loses it, the rectangle is searched
    pyramid, searches = detect_module.detect_faces, []

    def searched(*args, **kwargs):  # type: ignore[no-untyped-def]
        searches.append(1)
        return pyramid(*args, **kwargs)

    step = np.array([-0.4, 0.0, -0.4, 0.0], np.float32) * (x2 - x1)
    detect_module.detect_faces = searched
    try:
        followed = detector.detect_regions(image, [rect], [1], [whole.xyxy + step])
        assert not searches
        elsewhere = whole.xyxy + np.array([0, 2.5, 0, 2.5], np.float32) * (y2 - y1)
        lost = detector.detect_regions(image, [rect], [1], [elsewhere])
        assert searches
    finally:
        detect_module.detect_faces = pyramid
    for found in (both, first_only, lost):
        assert len(found) == 1
        # the same box within a pixel or two of the frame (the crop's resampling grid)
        assert np.abs(found.xyxy[0] - whole.xyxy[0]).max() <= 3 * max(1.0, 1 / scale)
    # following ends on ONet's box regression from other candidates: the face, a few % off
    assert len(followed) == 1
    assert np.abs(followed.xyxy[0] - whole.xyxy[0]).max() <= 0.1 * (x2 - x1) + 1 / scale


# Two unmasked people filmed by a panning camera: every frame is detected whole.
PANNING_UNMASKED = [
    Person("without_mask", 0.0, 6.0, [(0.0, (140.0, 60.0))], face=0, height_px=90),
    Person("without_mask", 0.0, 6.0, [(0.0, (400.0, 160.0))], face=2, height_px=90),
]


@pytest.mark.slow
def test_the_masked_face_detector_runs_where_it_can_add_a_face(
    factory: sessionmaker[Session], models: Models, tmp_path: Path
) -> None:
    video = make_panning_video(tmp_path / "pan.mp4", PANNING_UNMASKED, PANNING_SECONDS)
    detector = models.detector
    assert isinstance(detector, MergedDetector)
    second = detector._cascades[1]
    calls: list[int] = []
    inner = second.detect_prepared

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return inner(*args, **kwargs)

    second.detect_prepared = counted  # type: ignore[method-assign]
    try:
        _, got = run(factory, video, models, exhaustive=False)
        sparse_calls = len(calls)
        calls.clear()
        _, reference = run(factory, video, models, exhaustive=True)
    finally:
        del second.detect_prepared
    modes = [frame[1] for frame in got["frames"]]
    assert set(modes) == {"analysed"}
    # nobody masked and nobody lost: the second detector only on every SEARCH_EVERY-th
    # sample (and the first), against every frame in the reference
    assert len(calls) == len(modes)
    assert sparse_calls <= len(modes) // SEARCH_EVERY + 2
    # the same faces in each frame and the same people
    assert [f[2:] for f in got["frames"]] == [f[2:] for f in reference["frames"]]
    assert got["people"] == reference["people"] and got["people"].total == 2
