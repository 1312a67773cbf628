"""A job's evidence: which footage may be read for it, its stills and its annotated video."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.orm import Session

from maskwatch.core.analysis import AnalysisSettings
from maskwatch.core.records import FaceRecord
from storage.models import Job
from storage.repositories import dashboard as dashboard_repo
from storage.repositories import frames as frame_repo
from storage.repositories import jobs as job_repo
from storage.repositories import tracks as track_repo
from storage.repositories import videos as video_repo
from worker.pipeline.decode import probe
from worker.pipeline.errors import InputError
from worker.pipeline.evidence import FrameNotFound, evidence_still
from worker.pipeline.render import EncodeError, write_annotated_video

logger = logging.getLogger(__name__)


class EvidenceUnavailable(LookupError):
    """The job's footage cannot be shown: no longer kept, or not an upload of ours."""


def footage_of(job: Job, upload_dir: Path) -> Path:
    """The job's input file, if it is an upload under ``upload_dir`` that is still there.

    Only uploaded bytes are ever read: a job made by ``maskwatch analyze`` in a shared
    database names a path of the user's machine, which the API must not open.

    Raises:
        EvidenceUnavailable: with the reason, in the user's words.
    """
    path = Path(job.input_path).resolve()
    root = upload_dir.resolve()
    if not path.is_relative_to(root):
        raise EvidenceUnavailable("this job's footage was not uploaded to this server")
    if not path.is_file():
        raise EvidenceUnavailable("this job's footage is no longer kept")
    return path


def has_footage(job: Job, upload_dir: Path) -> bool:
    try:
        footage_of(job, upload_dir)
    except EvidenceUnavailable:
        return False
    return True


def stored_faces(
    session: Session, job_id: str, frame_index: int | None = None
) -> dict[int, list[FaceRecord]]:
    """The job's stored faces (of one frame if given) by frame index, as the renderers draw
    them: ``track_key`` is the person's track number, the one the job's tracks, reports and
    dashboard show (None for a face no track holds, or before the job is finalised)."""
    numbers = track_repo.track_numbers(session, job_id)
    faces: dict[int, list[FaceRecord]] = {}
    for d in frame_repo.list_detections(session, job_id, frame_index):
        number = None if d.track_id is None else numbers.get(d.track_id)
        faces.setdefault(d.frame_index, []).append(
            FaceRecord(d.x1, d.y1, d.x2, d.y2, d.label, d.score, d.face_prob, number)
        )
    return faces


def render(session: Session, job: Job, frame_index: int, upload_dir: Path, *, blur: bool) -> bytes:
    """One analysed frame of the job as a JPEG: faces boxed and labelled, blurred if ``blur``.

    Raises:
        EvidenceUnavailable: the footage cannot be read (see ``footage_of``).
        FrameNotFound: the job analysed no frame with this index.
    """
    frame = dashboard_repo.frame_of(session, job.id, frame_index)
    if frame is None:
        raise FrameNotFound(f"the job analysed no frame {frame_index}")
    path = footage_of(job, upload_dir)
    faces = stored_faces(session, job.id, frame_index).get(frame_index, [])
    try:
        return evidence_still(probe(path), frame_index, frame.timestamp_s, faces, blur=blur)
    except (InputError, TimeoutError) as exc:
        logger.warning("job %s frame %d: evidence not rendered: %s", job.id, frame_index, exc)
        raise EvidenceUnavailable("this job's footage can no longer be read") from exc


def write_job_video(
    session: Session, job: Job, footage: Path, out: Path, *, blur: bool
) -> int:
    """The job's footage annotated with its stored faces, as H.264 at ``out``; frames written.

    ``footage`` is the file to read: the CLI's own input, or an upload checked by
    ``footage_of``.

    Raises:
        DecodeError, TimeoutError, EncodeError: see ``write_annotated_video``.
    """
    faces_by_frame = stored_faces(session, job.id)
    sample_fps = AnalysisSettings.from_dict(job.settings).sample_fps
    return write_annotated_video(
        probe(footage), faces_by_frame, out, sample_fps=sample_fps, blur=blur
    )


def video_path(upload_dir: Path, job_id: str) -> Path:
    """Where a job's annotated video is kept: beside the uploads, named by the job's id."""
    return upload_dir / "annotated" / f"{job_id}.mp4"


def render_requested_video(session: Session, job_id: str, upload_dir: Path) -> bool:
    """Render a queued annotated video (the worker's side; commits its own steps).

    Returns whether this call rendered it; False when it was not queued (a duplicate
    message, or another worker has it). A failure is recorded on the video, in words.
    """
    if not video_repo.start(session, job_id):
        session.rollback()
        return False
    session.commit()
    video = video_repo.get_video(session, job_id)
    job = job_repo.get_job(session, job_id)
    if video is None or job is None:
        return False
    out = video_path(upload_dir, job_id)
    partial = out.with_suffix(".part.mp4")
    try:
        frames = write_job_video(
            session, job, footage_of(job, upload_dir), partial, blur=video.blur_faces
        )
        partial.replace(out)  # never a half-written file under the final name
    except (EvidenceUnavailable, InputError, TimeoutError, EncodeError) as exc:
        partial.unlink(missing_ok=True)
        video_repo.finish(session, job_id, frames=None, error=str(exc))
        session.commit()
        logger.info("job %s: annotated video failed: %s", job_id, exc)
        return True
    video_repo.finish(session, job_id, frames=frames, error=None)
    session.commit()
    return True
