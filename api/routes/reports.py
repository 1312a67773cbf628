"""/v1/reports: the compliance time series, aggregated in SQL, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Response, status

from api.auth import CallerDep
from api.deps import SessionDep
from api.errors import documented
from api.params import MAX_NAME_CHARS, NAME_PATTERN, parse_instant
from api.schemas import BucketOut, ReportOut, iso_utc
from maskwatch.core.reports import BucketSize, ReportFilter
from storage.repositories import reports as report_repo
from storage.repositories import tracks as track_repo

router = APIRouter(prefix="/v1/reports", tags=["reports"])

CSV_HEADER = (
    "bucket_start",
    "faces",
    "masked",
    "unmasked",
    "incorrect",
    "compliance_ratio",
    "people",
    "people_masked",
    "people_unmasked",
    "people_incorrect",
    "people_compliance_ratio",
)
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
# Parsed by parse_instant (which words its own 422s); documented as a date-time with offset.
INSTANT: dict[str, Any] = {"json_schema_extra": {"format": "date-time"}, "max_length": 64}


def wants_csv(accept: str | None) -> bool:
    """Whether the Accept header prefers text/csv to JSON (q-values honoured, ties to JSON)."""
    best_csv = best_json = -1.0
    for item in (accept or "").split(","):
        media, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.strip().lower()
        if media == "text/csv":
            best_csv = max(best_csv, quality)
        elif media in ("application/json", "application/*", "*/*"):
            best_json = max(best_json, quality)
    return best_csv > 0 and best_csv > best_json


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def to_csv(buckets: list[BucketOut]) -> str:
    """One header line and one line per bucket; a ratio without anyone to judge is empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for b in buckets:
        writer.writerow(
            [
                iso_utc(b.bucket_start),
                b.faces,
                b.masked,
                b.unmasked,
                b.incorrect,
                _ratio(b.compliance_ratio),
                b.people,
                b.people_masked,
                b.people_unmasked,
                b.people_incorrect,
                _ratio(b.people_compliance_ratio),
            ]
        )
    return out.getvalue()


@router.get(
    "",
    response_model=ReportOut,
    responses={
        **documented(401, 422),
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "the series as JSON, or as CSV with `Accept: text/csv`",
        },
    },
)
def compliance_report(
    caller: CallerDep,
    session: SessionDep,
    site: Annotated[str | None, Query(max_length=MAX_NAME_CHARS, pattern=NAME_PATTERN)] = None,
    camera: Annotated[str | None, Query(max_length=MAX_NAME_CHARS, pattern=NAME_PATTERN)] = None,
    start: Annotated[str | None, Query(alias="from", description="inclusive", **INSTANT)] = None,
    end: Annotated[str | None, Query(alias="to", description="exclusive", **INSTANT)] = None,
    bucket: BucketSize = "hour",
    accept: Annotated[str | None, Header()] = None,
) -> ReportOut | Response:
    """Face-frames and people per UTC minute, hour or day.

    faces, masked, unmasked, incorrect and compliance_ratio count face-frames (every face
    of every analysed frame); people_* count people, each in the bucket they were first
    seen in. Only succeeded jobs count; buckets without frames are left out. A key limited
    to a site always gets that site's numbers.
    """
    site, camera = site or None, camera or None  # ?site= filters nothing, like a blank field
    start_at = parse_instant(start, "from") if start else None
    end_at = parse_instant(end, "to") if end else None
    if start_at is not None and end_at is not None and end_at <= start_at:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail="'to' must be after 'from'"
        )
    if caller.site is not None and site is not None and site != caller.site:
        buckets: list[BucketOut] = []
    else:
        filters = ReportFilter(caller.site or site, camera, start_at, end_at)
        series = report_repo.compliance_timeseries(session, filters, bucket)
        people = track_repo.people_timeseries(session, filters, bucket)
        buckets = [BucketOut.of(b, people.get(b.start)) for b in series]
    if wants_csv(accept):
        return Response(to_csv(buckets), media_type=CSV_MEDIA_TYPE)
    return ReportOut(bucket=bucket, items=buckets)
