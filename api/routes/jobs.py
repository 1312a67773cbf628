"""/v1/jobs: submit footage, follow a job, list jobs, cancel or delete one, page its frames and
people."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from api.auth import Caller, CallerDep
from api.deps import Services, SessionDep, services
from api.errors import documented, media_error
from api.params import MAX_NAME_CHARS, NAME_PATTERN, form_name, parse_instant, unprocessable
from api.schemas import FrameOut, FramePage, JobOut, JobPage, TrackOut, TrackPage
from api.uploads import Upload, UploadError, multipart_body, receive_upload
from maskwatch.runtime import analysis_settings
from storage.models import InputKind, Job, JobStatus
from storage.repositories import cameras as camera_repo
from storage.repositories import frames as frame_repo
from storage.repositories import jobs as job_repo
from storage.repositories import reports as report_repo
from storage.repositories import tracks as track_repo
from worker import retention
from worker.pipeline.config import (
    FAST_DETECTOR_WEIGHTS,
    SHIPPED_DETECTOR_WEIGHTS,
    check_analysable,
)
from worker.pipeline.decode import MediaInfo, probe
from worker.pipeline.errors import InputError
from worker.planning import WorkLimits, plan_work

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

MAX_JOBS_PAGE = 100
MAX_FRAMES_PAGE = 1000
MAX_OFFSET = 2**31 - 1
FORM_FIELDS = frozenset({"camera", "site", "recorded_at", "detector", "exhaustive"})
#: The detector a job may ask for; without the field it gets the server's configured one.
DETECTORS = {"accurate": SHIPPED_DETECTOR_WEIGHTS, "fast": FAST_DETECTOR_WEIGHTS}
FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
_JOB_ID = re.compile(r"[0-9a-f]{32}")
# Footage's wall-clock start: frame times are recorded_at + timestamp_s, which must stay
# within what datetime and the database hold (year 9999 overflowed in the worker).
RECORDED_AT_RANGE = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))

NOT_FOUND = "job not found"

# A camera or site name as form_name accepts it: 1-100 characters once stripped, at least
# one of them visible, no control characters.
FORM_NAME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME_CHARS,
    "pattern": r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
}

# The body is parsed by api.uploads (streamed to disk), so FastAPI cannot infer it: describe it.
SUBMIT_BODY = multipart_body(
    "a video or an image",
    required=("file", "camera"),
    camera=FORM_NAME_SCHEMA,
    site={**FORM_NAME_SCHEMA, "description": "required unless the key is limited to a site"},
    recorded_at={
        "type": "string",
        "format": "date-time",
        "description": "wall-clock start of the footage, with a UTC "
        "offset, from 1970-01-01T00:00:00Z up to (not including) "
        "2100-01-01T00:00:00Z",
    },
    detector={
        "type": "string",
        "enum": sorted(DETECTORS),
        "description": "accurate: two detectors merged (the shipped "
        "default); fast: one, 1.4-2x the speed, fewer masked faces "
        "found; without the field, the server's configured detector",
    },
    exhaustive={
        "type": "string",
        "enum": ["true", "false"],
        "description": "true: detect and classify every sampled frame "
        "(the reference); false (default): frames whose scene did not "
        "change carry the last analysis over",
    },
)


@dataclass(frozen=True)
class SubmitForm:
    camera: str
    site: str
    recorded_at: datetime | None
    detector_weights: str | None  # None: the server's configured detector
    exhaustive: bool = False


def parse_submit_form(fields: dict[str, str], caller: Caller) -> SubmitForm:
    """The job's camera, site and recording time; 403 for another site, 422 when invalid."""
    unknown = sorted(set(fields) - FORM_FIELDS)
    if unknown:
        raise unprocessable(f"unknown form field(s): {', '.join(unknown)}")
    camera = form_name(fields, "camera")
    if camera is None:
        raise unprocessable("form field 'camera' is required")
    site = form_name(fields, "site")
    if caller.site is not None:
        if site is not None and site != caller.site:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"this key may only submit for site {caller.site!r}",
            )
        site = caller.site
    elif site is None:
        raise unprocessable("form field 'site' is required for a key not limited to one site")
    raw_time = fields.get("recorded_at")
    recorded_at = None
    if raw_time is not None:
        recorded_at = parse_instant(raw_time, "recorded_at")
        earliest, latest = RECORDED_AT_RANGE
        if not earliest <= recorded_at < latest:
            raise unprocessable(
                "recorded_at must be from 1970-01-01T00:00:00Z up to 2100-01-01T00:00:00Z, "
                f"got {raw_time[:40]!r}"
            )
    detector = fields.get("detector")
    if detector is not None and detector not in DETECTORS:
        raise unprocessable(f"detector must be one of: {', '.join(sorted(DETECTORS))}")
    exhaustive = fields.get("exhaustive", "false")
    if exhaustive not in ("true", "false"):
        raise unprocessable("exhaustive must be true or false")
    return SubmitForm(camera=camera, site=site, recorded_at=recorded_at,
                      detector_weights=DETECTORS[detector] if detector else None,
                      exhaustive=exhaustive == "true")


def probe_upload(upload: Upload, svc: Services) -> MediaInfo:
    """ffprobe the stored upload: 415 when it is not media we analyse, 422 when unusable
    or when it holds more work than a job may (the worker checks again when planning)."""
    try:
        info = probe(upload.path, upload.display_name)
        settings = analysis_settings(svc.settings)
        check_analysable(info, settings)
        plan_work(info, settings, WorkLimits.from_settings(svc.settings))
    except (InputError, TimeoutError) as exc:
        raise media_error(exc, upload) from exc
    return info


def accept_job(session: Session, svc: Services, caller: Caller, upload: Upload) -> Job:
    """Validate, probe, store and enqueue an uploaded file (runs in a worker thread).

    Until the job row is committed, any failure deletes the file; the queue only hears of
    the job after the commit, so a worker never looks for a row that is not there.
    """
    try:
        form = parse_submit_form(upload.fields, caller)
        info = probe_upload(upload, svc)
        camera = camera_repo.get_or_create_camera(session, site=form.site, name=form.camera)
        job = job_repo.create_job(
            session,
            camera=camera,
            input_kind=InputKind(info.kind),
            input_path=str(upload.path.resolve()),
            input_name=upload.display_name,
            settings=analysis_settings(
                svc.settings,
                detector_weights=form.detector_weights,
                exhaustive=form.exhaustive or None,
            ).to_dict(),
            recorded_at=form.recorded_at,
        )
        session.commit()
    except BaseException:
        upload.discard()
        raise
    try:
        svc.enqueue(job.id)
    except Exception:
        logger.exception("could not enqueue job %s", job.id)
        job_repo.mark_failed(session, job, "could not be queued: the job queue is unavailable")
        session.commit()
        upload.discard()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="the job queue is unavailable; try again"
        ) from None
    logger.info(
        "job %s queued: %s for %s/%s (%d bytes)",
        job.id,
        info.kind,
        form.site,
        form.camera,
        upload.size,
    )
    return job


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobOut,
    openapi_extra=SUBMIT_BODY,
    responses=documented(400, 401, 403, 413, 415, 422, 503),
)
async def submit_job(
    request: Request, response: Response, caller: CallerDep, session: SessionDep
) -> JobOut:
    """Upload a video or image (multipart field `file`) from `camera` at `site` for analysis."""
    svc = services(request)
    try:
        upload = await receive_upload(
            request, upload_dir=svc.settings.upload_dir, max_bytes=svc.settings.max_upload_bytes
        )
    except UploadError as exc:
        raise HTTPException(exc.status_code, detail=exc.detail) from exc
    job = await run_in_threadpool(accept_job, session, svc, caller, upload)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobOut.of(job)


def visible_job(session: Session, caller: Caller, job_id: str) -> Job:
    """The job if it exists and the caller's key may see it; 404 alike otherwise."""
    job = job_repo.get_job(session, job_id) if _JOB_ID.fullmatch(job_id) else None
    if job is None or not caller.may_see(job.camera.site):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NOT_FOUND)
    return job


def job_out(session: Session, job: Job) -> JobOut:
    if job.status is not JobStatus.SUCCEEDED:
        return JobOut.of(job)
    summary = report_repo.job_summary(session, job.id)
    return JobOut.of(job, summary, track_repo.people_summary(session, job.id))


@router.get("", response_model=JobPage, responses=documented(401, 422))
def list_jobs(
    caller: CallerDep,
    session: SessionDep,
    site: Annotated[str | None, Query(max_length=MAX_NAME_CHARS, pattern=NAME_PATTERN)] = None,
    camera: Annotated[str | None, Query(max_length=MAX_NAME_CHARS, pattern=NAME_PATTERN)] = None,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_JOBS_PAGE)] = 50,
) -> JobPage:
    """Jobs newest first; a key limited to a site sees only that site's jobs.

    An empty ``site`` or ``camera`` (``?site=``) means no filter, as a blank form field would.
    """
    site, camera = site or None, camera or None
    if caller.site is not None:
        if site is not None and site != caller.site:
            return JobPage(items=[], total=0)
        site = caller.site
    jobs, total = job_repo.list_jobs(
        session, site=site, camera=camera, status=status_, offset=offset, limit=limit
    )
    return JobPage(items=[job_out(session, job) for job in jobs], total=total)


@router.get("/{job_id}", response_model=JobOut, responses=documented(401, 404))
def get_job(job_id: str, caller: CallerDep, session: SessionDep) -> JobOut:
    """A job's status, progress, timings, error and, once it succeeded, its totals."""
    return job_out(session, visible_job(session, caller, job_id))


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=documented(401, 404, 409),
)
def cancel_job(job_id: str, request: Request, caller: CallerDep, session: SessionDep) -> JobOut:
    """Cancel a queued or running job, keeping it and what it stored; workers stop at
    their next batch. 409 once finished."""
    job = visible_job(session, caller, job_id)
    if job.status in FINISHED:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"job already {job.status.value}")
    try:
        services(request).cancel(session, job)
    except job_repo.InvalidJobTransition:  # it finished while we looked
        session.rollback()
        session.refresh(job)
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"job already {job.status.value}"
        ) from None
    session.commit()
    logger.info("job %s cancelled by key %d", job.id, caller.key_id)
    return job_out(session, job)


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=documented(401, 404),
)
def delete_job(job_id: str, request: Request, caller: CallerDep, session: SessionDep) -> Response:
    """Delete a job: its uploaded file, its frames and faces, the job itself. A queued or
    running job is cancelled first. To stop a job and keep what it stored, cancel it."""
    job = visible_job(session, caller, job_id)
    svc = services(request)
    files = retention.delete_job(session, job, svc.settings.upload_dir, svc.cancel)
    session.commit()
    retention.remove_files(files)
    logger.info("job %s deleted by key %d", job_id, caller.key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@dataclass(frozen=True)
class JobRows:
    """Which of a job's rows (frames, tracks) a request pages through: the job, once the
    caller may see it, and the page's offset and size."""

    job: Job
    offset: int
    limit: int


def job_rows(
    job_id: str,
    caller: CallerDep,
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_FRAMES_PAGE)] = 100,
) -> JobRows:
    return JobRows(visible_job(session, caller, job_id), offset, limit)


JobRowsDep = Annotated[JobRows, Depends(job_rows)]


@router.get("/{job_id}/frames", response_model=FramePage, responses=documented(401, 404))
def list_frames(rows: JobRowsDep, session: SessionDep) -> FramePage:
    """The job's analysed frames in frame order, with their face counts."""
    frames, total = frame_repo.list_frames(
        session, rows.job.id, offset=rows.offset, limit=rows.limit
    )
    return FramePage(items=[FrameOut.model_validate(f) for f in frames], total=total)


@router.get("/{job_id}/tracks", response_model=TrackPage, responses=documented(401, 404))
def list_tracks(rows: JobRowsDep, session: SessionDep) -> TrackPage:
    """The job's people (one track per appearance) in order of appearance."""
    tracks, total = track_repo.list_tracks(
        session, rows.job.id, offset=rows.offset, limit=rows.limit
    )
    return TrackPage(items=[TrackOut.of(t) for t in tracks], total=total)
