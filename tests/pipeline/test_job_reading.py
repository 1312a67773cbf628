"""A job is classified as its stored settings say (mirrored reading or not), whatever the
process that runs it was configured with."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from maskwatch.settings import DEFAULT_CHECKPOINT
from ml.footage import render_composition
from storage.models import InputKind, JobStatus
from storage.repositories import cameras as camera_repo
from storage.repositories import frames as frame_repo
from storage.repositories import jobs as job_repo
from worker.jobs import run_job
from worker.pipeline.analyze import AnalysisSettings, Models, load_models
from worker.pipeline.classify import CNNMaskClassifier

pytestmark = pytest.mark.slow  # real models over images or video

FAST = AnalysisSettings(detector_weights="mtcnn_finetuned.pt")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scene") / "two.png"
    render_composition(2, 1).save(path)
    return path


def _scores(factory: sessionmaker[Session], image: Path, settings: AnalysisSettings,
            models: Models) -> list[tuple[str, float]]:
    with factory() as session:
        camera = camera_repo.get_or_create_camera(session, "gate", "site")
        job_id = job_repo.create_job(session, camera=camera, input_kind=InputKind.IMAGE,
                                     input_path=str(image), input_name=image.name,
                                     settings=settings.to_dict()).id
        session.commit()
    run_job(factory, job_id, models)
    with factory() as session:
        job = job_repo.get_job(session, job_id)
        assert job is not None and job.status is JobStatus.SUCCEEDED, job and job.error
        assert job.settings["mirror_faces"] is settings.mirror_faces
        return [(d.label, d.score) for d in frame_repo.list_detections(session, job_id)]


def test_a_job_that_asks_for_no_mirroring_gets_none(
    factory: sessionmaker[Session], image: Path
) -> None:
    mirrored_process = load_models(FAST, DEFAULT_CHECKPOINT, "cpu", threads=1)
    plain_process = load_models(AnalysisSettings(detector_weights="mtcnn_finetuned.pt",
                                                 mirror_faces=False),
                                DEFAULT_CHECKPOINT, "cpu", threads=1)
    plain_job = AnalysisSettings(detector_weights="mtcnn_finetuned.pt", mirror_faces=False)

    as_asked = _scores(factory, image, plain_job, mirrored_process)
    reference = _scores(factory, image, plain_job, plain_process)
    mirrored = _scores(factory, image, FAST, mirrored_process)

    assert len(as_asked) == 3
    assert sorted(label for label, _ in as_asked) == ["with_mask", "with_mask", "without_mask"]
    assert as_asked == reference
    assert as_asked != mirrored  # the two readings differ on these faces, or this proves nothing
    # the process's own setting is untouched
    assert isinstance(mirrored_process.classifier, CNNMaskClassifier)
    assert mirrored_process.classifier.mirror is True
