"""Evidence of a job: an analysed frame as a still, and the whole footage annotated."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api.auth import CallerDep
from api.deps import SessionDep, services
from api.errors import documented
from api.routes.jobs import visible_job
from api.schemas import UTCDateTime
from storage.models import AnnotatedVideo, Job, JobStatus, VideoStatus
from storage.repositories import videos as video_repo
from worker import evidence
from worker.pipeline.evidence import FrameNotFound

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JPEG = "image/jpeg"


def still_response(body: bytes) -> Response:
    # Private: a frame of someone's footage is never kept by a shared cache.
    return Response(body, media_type=JPEG, headers={"Cache-Control": "private, max-age=300"})


def evidence_response(request: Request, session: Session, job: Job, frame_index: int) -> Response:
    """The still of ``job``'s frame (the caller checked the key may see the job)."""
    settings = services(request).settings
    try:
        body = evidence.render(
            session, job, frame_index, settings.upload_dir, blur=settings.blur_faces
        )
    except FrameNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    except evidence.EvidenceUnavailable as exc:
        raise HTTPException(status.HTTP_410_GONE, detail=str(exc)) from None
    return still_response(body)


@router.get(
    "/{job_id}/frames/{frame_index}/evidence.jpg",
    response_class=Response,
    responses={**documented(401, 404, 410), 200: {"content": {JPEG: {}}}},
)
def frame_evidence(
    job_id: str,
    frame_index: Annotated[int, Path(ge=0, le=2**31 - 1)],
    request: Request,
    caller: CallerDep,
    session: SessionDep,
) -> Response:
    """The analysed frame as a JPEG: faces boxed and labelled, and blurred unless the server
    runs with MASKWATCH_BLUR_FACES=false. 410 once the footage is no longer kept."""
    job = visible_job(session, caller, job_id)
    return evidence_response(request, session, job, frame_index)


class VideoOut(BaseModel):
    """A job's annotated video: boxes and labels drawn on the analysed frames, H.264."""

    job_id: str
    status: VideoStatus
    blur_faces: bool = Field(description="whether every face is blurred (MASKWATCH_BLUR_FACES)")
    frames: int | None
    error: str | None
    download: str | None = Field(description="where to GET the .mp4 once succeeded")
    updated_at: UTCDateTime


def video_out(video: AnnotatedVideo) -> VideoOut:
    done = video.status is VideoStatus.SUCCEEDED
    return VideoOut(
        job_id=video.job_id,
        status=video.status,
        blur_faces=video.blur_faces,
        frames=video.frames,
        error=video.error,
        download=f"/v1/jobs/{video.job_id}/annotated-video.mp4" if done else None,
        updated_at=video.updated_at,
    )


@router.post(
    "/{job_id}/annotated-video",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=VideoOut,
    responses=documented(401, 404, 409, 410, 503),
)
def request_annotated_video(
    job_id: str, request: Request, caller: CallerDep, session: SessionDep
) -> VideoOut:
    """Have a worker render the job's footage with its boxes and labels (faces blurred unless
    the server says otherwise); poll GET .../annotated-video, then download the .mp4."""
    job = visible_job(session, caller, job_id)
    if job.status is not JobStatus.SUCCEEDED:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"the job is {job.status.value}")
    settings = services(request).settings
    try:
        evidence.footage_of(job, settings.upload_dir)
    except evidence.EvidenceUnavailable as exc:
        raise HTTPException(status.HTTP_410_GONE, detail=str(exc)) from None
    video, queued = video_repo.request_video(session, job.id, blur_faces=settings.blur_faces)
    session.commit()
    if queued:
        from worker.events import send_video

        try:
            send_video(job.id)
        except Exception:
            video_repo.finish(session, job.id, frames=None, error="the job queue is unavailable")
            session.commit()
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, detail="the job queue is unavailable"
            ) from None
    return video_out(video)  # as this request left it: a worker may have started since


@router.get(
    "/{job_id}/annotated-video", response_model=VideoOut, responses=documented(401, 404)
)
def annotated_video(job_id: str, caller: CallerDep, session: SessionDep) -> VideoOut:
    """Whether the job's annotated video is queued, running, ready or failed (and why)."""
    job = visible_job(session, caller, job_id)
    video = video_repo.get_video(session, job.id)
    if video is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no annotated video was requested")
    return video_out(video)


@router.get(
    "/{job_id}/annotated-video.mp4",
    response_class=FileResponse,
    responses={**documented(401, 404, 409, 410), 200: {"content": {"video/mp4": {}}}},
)
def download_annotated_video(
    job_id: str, request: Request, caller: CallerDep, session: SessionDep
) -> FileResponse:
    """The rendered .mp4 (H.264)."""
    job = visible_job(session, caller, job_id)
    video = video_repo.get_video(session, job.id)
    if video is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no annotated video was requested")
    if video.status is not VideoStatus.SUCCEEDED:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"the video is {video.status.value}")
    path = evidence.video_path(services(request).settings.upload_dir, job.id)
    if not path.is_file():
        raise HTTPException(status.HTTP_410_GONE, detail="the video is no longer kept")
    return FileResponse(
        path, media_type="video/mp4", filename=f"{job.id}-annotated.mp4",
        headers={"Cache-Control": "private, no-store"},
    )
