"""A job split into segments stores the same rows as one run, settled tracks included."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ml.people_footage import BOUNDARIES, BOUNDARIES_SECONDS, make_people_video
from storage.models import FaceDetection, FrameStat, JobStatus, Track
from storage.repositories import jobs as job_repo
from tests.db_support import add_video_job
from worker.jobs import Segment, analyze_segment, finish_job, run_job
from worker.pipeline.analyze import AnalysisSettings, Models
from worker.pipeline.classify import MaskClassifier
from worker.pipeline.decode import probe
from worker.pipeline.types import FaceLabels

pytestmark = pytest.mark.slow  # real models over generated video


@dataclass
class CountingClassifier:
    """The real classifier, counting the faces it is asked to read."""

    inner: MaskClassifier
    faces: int = 0

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.inner.class_names

    def classify(self, frame: np.ndarray, xyxy: np.ndarray) -> FaceLabels:
        self.faces += len(xyxy)
        return self.inner.classify(frame, xyxy)


def stored(factory: sessionmaker[Session], job_id: str) -> tuple[list, list, list]:
    """The job's frames, faces (with their track's number) and tracks, as rows."""
    with factory() as session:
        frames = session.execute(
            select(FrameStat.frame_index, FrameStat.mode, FrameStat.faces, FrameStat.masked,
                   FrameStat.unmasked, FrameStat.incorrect)
            .where(FrameStat.job_id == job_id).order_by(FrameStat.frame_index)
        ).all()
        faces = session.execute(
            select(FaceDetection.frame_index, FaceDetection.x1, FaceDetection.y1,
                   FaceDetection.label, FaceDetection.score, Track.track_index)
            .outerjoin(Track, Track.id == FaceDetection.track_id)
            .where(FaceDetection.job_id == job_id)
            .order_by(FaceDetection.frame_index, FaceDetection.x1)
        ).all()
        tracks = session.execute(
            select(Track.track_index, Track.first_frame_index, Track.last_frame_index,
                   Track.label, Track.seconds_seen, Track.seconds_masked, Track.readings)
            .where(Track.job_id == job_id).order_by(Track.track_index)
        ).all()
    return frames, faces, tracks


def test_segments_store_the_rows_of_one_run_while_settled_tracks_skip_readings(
    factory: sessionmaker[Session], models: Models, tmp_path: Path
) -> None:
    video = make_people_video(tmp_path / "boundaries.mp4", BOUNDARIES, BOUNDARIES_SECONDS)
    with factory() as session:
        whole_id, split_id = (
            add_video_job(session, video, settings=AnalysisSettings().to_dict()).id
            for _ in range(2)
        )
        session.commit()
    counting = CountingClassifier(models.classifier)
    run_job(factory, whole_id, replace(models, classifier=counting))  # type: ignore[arg-type]
    whole = stored(factory, whole_id)
    # Cut just after each newcomer's first frame: the tracker confirms a track on the
    # face after the one that started it, which the segment before reads as look-ahead.
    starts = sorted({t.first_frame_index for t in whole[2] if t.first_frame_index > 0})
    fps = probe(video).fps
    assert fps is not None
    cuts = [frame_index / fps + 0.1 for frame_index in starts]  # samples are 0.2 s apart
    assert len(cuts) >= 2
    bounds = list(zip([0.0, *cuts], [*cuts, None], strict=True))
    with factory() as session:
        split = job_repo.get_job(session, split_id)
        assert split is not None
        job_repo.mark_running(session, split, 50)
        for index, (start, end) in enumerate(bounds):
            analyze_segment(session, split, models, Segment(start, end, index))
        finish_job(session, split)
        session.commit()
        assert split.status is JobStatus.SUCCEEDED

    frames, faces, tracks = stored(factory, split_id)
    assert len(tracks) == 4
    # settled tracks were not read on every frame they were seen ...
    analysed_faces = sum(f.faces for f in whole[0] if f.mode == "analysed")
    assert counting.faces < 0.7 * analysed_faces
    # ... and the segments agree with the whole run, row for row
    assert frames == whole[0]
    assert faces == whole[1]
    assert tracks == whole[2]
