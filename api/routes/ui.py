"""/ui/: the dashboard, server-rendered (Jinja2) with a vendored chart library; no CDN.

Sign-in takes an API key and keeps it in an HttpOnly, SameSite=Strict cookie limited to
/ui/; every page checks it like the API checks its Bearer header (a revoked key is signed
out at its next click) and shows only what the key's site may see.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request, status
from fastapi import Path as UrlPath
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from api.auth import Caller
from api.deps import SessionDep, services
from api.params import MAX_NAME_CHARS, NAME_PATTERN, parse_instant
from api.routes.evidence import evidence_response
from api.schemas import iso_utc, shown
from maskwatch.core.counts import FaceCounts, PeopleCounts
from maskwatch.core.reports import BUCKET_SIZES, BucketSize, ReportFilter
from storage.models import Job, JobStatus
from storage.repositories import api_keys as key_repo
from storage.repositories import dashboard as dashboard_repo
from storage.repositories import jobs as job_repo
from storage.repositories import reports as report_repo
from storage.repositories import tracks as track_repo
from worker.evidence import has_footage

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent.parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/ui", include_in_schema=False)

COOKIE = "maskwatch_key"
COOKIE_PATH = "/ui"
COOKIE_MAX_AGE_S = 12 * 3600
JOBS_SHOWN = 50
TRACKS_SHOWN = 200  # the first people of a job in order of appearance; the API pages the rest
WORST_PERIODS = 3
#: How much footage a camera page shows by default, ending at its last frame, per bucket:
#: enough points to read, few enough to draw fast (a day of minutes is 1440).
DEFAULT_SPAN = {"minute": timedelta(days=1), "hour": timedelta(days=14), "day": timedelta(days=366)}
MAX_POINTS = 5000
#: Pages send no inline script: the data travels in JSON <script> tags that CSP leaves alone.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
Name = Annotated[str, Query(min_length=1, max_length=MAX_NAME_CHARS, pattern=NAME_PATTERN)]


class SignInRequired(Exception):
    """No valid key in the cookie: the page answers with a redirect to the sign-in form."""


def install(app: FastAPI) -> None:
    """Add the dashboard's pages and its static files to the app."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.add_exception_handler(SignInRequired, _to_sign_in)


async def _to_sign_in(request: Request, exc: Exception) -> Response:
    response = RedirectResponse("/ui/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


def _caller(request: Request, session: Session) -> Caller:
    key = request.cookies.get(COOKIE)
    api_key = key_repo.authenticate(session, key) if key else None
    if api_key is None:
        raise SignInRequired()
    return Caller(api_key.id, api_key.name, api_key.site, api_key.is_admin)


def _page(request: Request, name: str, caller: Caller | None, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(
        request, name, {"caller": caller, "percent": _percent, **context}
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.1f} %"


def _chart_percent(ratio: float | None) -> float | None:
    return None if ratio is None else round(ratio * 100, 2)


# ------------------------------------------------------------------------------ sign-in


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    target = "/ui/sites" if request.cookies.get(COOKIE) else "/ui/login"
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return _page(request, "ui/login.html", None, error=None)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request, session: SessionDep, key: Annotated[str, Form(max_length=200)]
) -> Response:
    api_key = key_repo.authenticate(session, key.strip())
    if api_key is None:
        client = request.client.host if request.client else "unknown"
        logger.info("dashboard: rejected a sign-in from %s", client)
        page = _page(request, "ui/login.html", None, error="invalid or revoked API key")
        page.status_code = status.HTTP_401_UNAUTHORIZED
        return page
    response = RedirectResponse("/ui/sites", status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        COOKIE,
        key.strip(),
        max_age=COOKIE_MAX_AGE_S,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/ui/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


# -------------------------------------------------------------------------------- pages


@router.get("/sites", response_class=HTMLResponse)
def sites(request: Request, session: SessionDep) -> HTMLResponse:
    """Sites and cameras, each with the compliance of its latest succeeded job."""
    caller = _caller(request, session)
    cameras = dashboard_repo.camera_overview(session, caller.site)
    return _page(request, "ui/sites.html", caller, cameras=cameras, iso=iso_utc)


def worst_periods(buckets: list[report_repo.Bucket], count: int = WORST_PERIODS) -> list[int]:
    """Indices of the ``count`` buckets with the lowest compliance (more non-compliant faces
    first on a tie), oldest first; buckets without faces are never worst."""
    with_faces = [i for i, b in enumerate(buckets) if b.counts.compliance_ratio is not None]
    ranked = sorted(
        with_faces,
        key=lambda i: (
            buckets[i].counts.compliance_ratio,
            -(buckets[i].counts.faces - buckets[i].counts.masked),
            i,
        ),
    )
    return sorted(ranked[:count])


@router.get("/camera", response_class=HTMLResponse)
def camera_page(
    request: Request,
    session: SessionDep,
    site: Name,
    camera: Name,
    bucket: Annotated[str, Query(pattern=f"^({'|'.join(BUCKET_SIZES)})$")] = "hour",
    start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
) -> HTMLResponse:
    """Compliance over time for one camera, bucket chosen by the user, worst periods marked."""
    caller = _caller(request, session)
    if not caller.may_see(site):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="camera not found")
    end_at = parse_instant(end, "to") if end else None
    start_at = parse_instant(start, "from") if start else None
    if end_at is None and start_at is None:
        last = dashboard_repo.last_capture(session, site, camera)
        if last is not None:
            end_at = last + timedelta(seconds=1)
            start_at = end_at - DEFAULT_SPAN[bucket]
    filters = ReportFilter(site, camera, start_at, end_at)
    size = cast(BucketSize, bucket)  # one of BUCKET_SIZES: the pattern holds it to them
    # The same two queries as /v1/reports: face-frames per bucket, and the people first
    # seen in each (a bucket without frames is left out there and here).
    buckets = report_repo.compliance_timeseries(session, filters, size)
    people_by_start = track_repo.people_timeseries(session, filters, size)
    too_many = len(buckets) > MAX_POINTS
    if too_many:
        buckets = buckets[-MAX_POINTS:]
    people = [people_by_start.get(b.start, PeopleCounts()) for b in buckets]
    worst = worst_periods(buckets)
    chart = {
        "labels": [iso_utc(b.start) for b in buckets],
        "compliance_percent": [_chart_percent(b.counts.compliance_ratio) for b in buckets],
        "faces": [b.counts.faces for b in buckets],
        "people_compliance_percent": [_chart_percent(p.compliance_ratio) for p in people],
        "people": [p.total for p in people],
        "worst": worst,
    }
    return _page(
        request,
        "ui/camera.html",
        caller,
        site=site,
        camera=camera,
        bucket=bucket,
        start=start or ("" if start_at is None else iso_utc(start_at)),
        end=end or ("" if end_at is None else iso_utc(end_at)),
        buckets=buckets,
        people=people,
        worst=set(worst),
        worst_buckets=[buckets[i] for i in worst],
        chart=chart,
        too_many=too_many,
        max_points=MAX_POINTS,
        iso=iso_utc,
        shown=shown,
    )


def _job_row(
    job: Job, summary: FaceCounts | None, people: PeopleCounts | None = None
) -> dict[str, Any]:
    """A job as the job list and its live updates show it; its face-frame and people
    figures only once succeeded."""
    if job.status is not JobStatus.SUCCEEDED:
        summary = people = None
    return {
        "id": job.id,
        "status": job.status.value,
        "site": job.camera.site,
        "camera": job.camera.name,
        "input_name": job.input_name,
        "created_at": iso_utc(job.created_at),
        "recorded_at": iso_utc(job.recorded_at),
        "frames_done": job.frames_done,
        "frames_total": job.frames_total,
        "progress_percent": _progress(job),
        "faces": None if summary is None else summary.faces,
        "compliance": None if summary is None else _percent(summary.compliance_ratio),
        "people": None if people is None else people.total,
        "people_compliance": None if people is None else _percent(people.compliance_ratio),
        "error": job.error,
    }


def _progress(job: Job) -> int | None:
    if job.status is JobStatus.SUCCEEDED:
        return 100
    if not job.frames_total:
        return None
    return min(100, round(100 * job.frames_done / job.frames_total))


@dataclass(frozen=True)
class _JobList:
    """The newest jobs the caller may see (of one status, when asked), as the list shows them."""

    caller: Caller
    status: JobStatus | None
    rows: list[dict[str, Any]]


def _job_list(
    request: Request,
    session: SessionDep,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
) -> _JobList:
    caller = _caller(request, session)
    found, _ = job_repo.list_jobs(session, site=caller.site, status=status_, limit=JOBS_SHOWN)
    succeeded = [job.id for job in found if job.status is JobStatus.SUCCEEDED]
    totals = dashboard_repo.job_summaries(session, succeeded)
    people = track_repo.people_summaries(session, succeeded)
    rows = [_job_row(job, totals.get(job.id), people.get(job.id, PeopleCounts())) for job in found]
    return _JobList(caller, status_, rows)


JobListDep = Annotated[_JobList, Depends(_job_list)]


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, listed: JobListDep) -> HTMLResponse:
    """The newest jobs; the page refreshes their status and progress while any is unfinished."""
    return _page(
        request, "ui/jobs.html", listed.caller, jobs=listed.rows,
        status=listed.status.value if listed.status else "", statuses=[s.value for s in JobStatus],
    )


@router.get("/jobs.json")
def jobs_json(listed: JobListDep) -> JSONResponse:
    """What the job list's script polls (the cookie's key, like the page)."""
    response = JSONResponse({"items": listed.rows})
    response.headers.update(SECURITY_HEADERS)
    return response


def _visible_job(session: Session, caller: Caller, job_id: str) -> Job:
    job = job_repo.get_job(session, job_id) if len(job_id) == 32 else None
    if job is None or not caller.may_see(job.camera.site):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="job not found")
    return job


@router.get("/jobs/{job_id}/evidence/{frame_index}.jpg")
def job_evidence(
    request: Request,
    session: SessionDep,
    job_id: str,
    frame_index: Annotated[int, UrlPath(ge=0, le=2**31 - 1)],
) -> Response:
    """A worst moment's still for the job page (the cookie's key, like the page)."""
    caller = _caller(request, session)
    return evidence_response(request, session, _visible_job(session, caller, job_id), frame_index)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, session: SessionDep, job_id: str) -> HTMLResponse:
    """One job: its numbers (face-frames and people), its compliance along the footage, its
    people's tracks and its worst moments."""
    caller = _caller(request, session)
    job = _visible_job(session, caller, job_id)
    summary = report_repo.job_summary(session, job.id)
    timeline = dashboard_repo.job_timeline(session, job.id)
    worst = report_repo.worst_frames(session, job.id, limit=5)
    tracks, track_total = track_repo.list_tracks(session, job.id, limit=TRACKS_SHOWN)
    chart = {
        "labels": [p.start_s for p in timeline],
        "compliance_percent": [_chart_percent(p.counts.compliance_ratio) for p in timeline],
        "faces": [p.counts.faces for p in timeline],
        "worst": [],
    }
    return _page(
        request,
        "ui/job.html",
        caller,
        job=_job_row(job, summary),
        summary=summary,
        worst_frames=worst,
        chart=chart,
        at=lambda seconds: iso_utc(job.recorded_at + timedelta(seconds=seconds)),
        stills=has_footage(job, services(request).settings.upload_dir),
        blurred=services(request).settings.blur_faces,
        people=track_repo.people_summary(session, job.id),
        tracks=tracks,
        track_total=track_total,
    )
