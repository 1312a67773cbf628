"""`maskwatch jobs list|show|cancel|delete` and `maskwatch reports`, through the HTTP API."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import typer

from maskwatch.commands.remote import (
    API_OPTION,
    KEY_OPTION,
    connected,
    percent,
    print_json,
    print_listing,
    print_table,
)

jobs_app = typer.Typer(help="Analysis jobs on a MaskWatch API.", no_args_is_help=True)
JOB_ID = typer.Argument(..., help="The job's id.")


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def job_row(job: dict[str, Any]) -> list[Any]:
    progress = job["progress"]
    done = f"{progress['frames_done']}/{progress['frames_total'] or '?'}"
    summary = job.get("summary") or {}
    return [
        job["id"],
        job["status"],
        job["site"],
        job["camera"],
        job["input_name"],
        job["created_at"],
        done,
        summary.get("faces"),
        percent(summary.get("compliance_ratio")),
    ]


JOB_HEADER = ("id", "status", "site", "camera", "input", "created", "frames", "faces", "compliance")


@jobs_app.command("list")
def jobs_list(
    site: str = typer.Option(None, help="Only this site's jobs."),
    camera: str = typer.Option(None, help="Only this camera's jobs."),
    status: str = typer.Option(None, help="queued, running, succeeded, failed or cancelled."),
    limit: int = typer.Option(50, min=1, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print the jobs as a JSON list."),
    api: str = API_OPTION,
    key: str = KEY_OPTION,
) -> None:
    """List jobs, newest first (a site key sees its own site's only)."""
    with connected(api, key) as client:
        found = []
        for job in client.iter_jobs(site=site, camera=camera, status=status):
            found.append(job)
            if len(found) >= limit:
                break
    print_listing(found, as_json, JOB_HEADER, job_row)


@jobs_app.command("show")
def jobs_show(job_id: str = JOB_ID, api: str = API_OPTION, key: str = KEY_OPTION) -> None:
    """Print a job (status, progress, timings, totals) as JSON."""
    with connected(api, key) as client:
        print_json(client.job(job_id))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str = JOB_ID, api: str = API_OPTION, key: str = KEY_OPTION) -> None:
    """Stop a queued or running job, keeping what it stored; print it as JSON."""
    with connected(api, key) as client:
        print_json(client.cancel(job_id))


@jobs_app.command("delete")
def jobs_delete(job_id: str = JOB_ID, api: str = API_OPTION, key: str = KEY_OPTION) -> None:
    """Delete a job: its uploaded footage, its statistics, what was rendered from it (a
    running job is cancelled first). Cannot be undone."""
    with connected(api, key) as client:
        client.delete(job_id)
    typer.echo(f"deleted job {job_id}", err=True)


def reports(
    site: str = typer.Option(None, help="Only this site (a site key implies its own)."),
    camera: str = typer.Option(None, help="Only this camera."),
    start: str = typer.Option(None, "--from", help="Inclusive start, ISO 8601 with offset."),
    end: str = typer.Option(None, "--to", help="Exclusive end, ISO 8601 with offset."),
    bucket: str = typer.Option("hour", help="minute, hour or day (UTC)."),
    output: Format = typer.Option(Format.TABLE, "--format", help="table, json or csv."),
    api: str = API_OPTION,
    key: str = KEY_OPTION,
) -> None:
    """Compliance over time from the API: faces, masked, unmasked, incorrect per bucket."""
    query = {"site": site, "camera": camera, "start": start, "end": end, "bucket": bucket}
    with connected(api, key) as client:
        if output is Format.CSV:
            typer.echo(client.report_csv(**query), nl=False)
            return
        report = client.report(**query)
    if output is Format.JSON:
        print_json(report)
        return
    print_table(
        ("bucket_start", "faces", "masked", "unmasked", "incorrect", "compliance"),
        [
            [b["bucket_start"], b["faces"], b["masked"], b["unmasked"], b["incorrect"],
             percent(b["compliance_ratio"])]
            for b in report["items"]
        ],
    )


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
    app.command()(reports)
