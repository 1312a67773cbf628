"""GET /v1/jobs/{id}/frames/{frame_index}/evidence.jpg: an analysed frame as proof."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from sqlalchemy.orm import Session

from api.auth import CallerDep
from api.deps import SessionDep, services
from api.errors import documented
from api.routes.jobs import visible_job
from storage.models import Job
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
