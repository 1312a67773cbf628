"""Rich rendering of reports for the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from maskwatch.core.counts import PeopleCounts, shown
from worker.report import JobReport, Report


def _ratio(value: float | None) -> str:
    shown_value = shown(value)
    return "n/a" if shown_value is None else f"{shown_value:.1%}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes):02d}:{secs:05.2f}"


def _people(p: PeopleCounts) -> str:
    return (
        f"people {p.total} · masked {p.masked} · unmasked {p.unmasked} · "
        f"incorrect {p.incorrect} · ever unmasked {p.ever_unmasked} · compliance by person "
        f"[bold]{_ratio(p.compliance_ratio)}[/bold], by person-seconds "
        f"{_ratio(p.seconds_compliance_ratio)}"
    )


def render_job(console: Console, job: JobReport) -> None:
    title = f"{job.input_name}  [dim]job {job.job_id} · {job.site}/{job.camera}[/dim]"
    if job.status != "succeeded":
        console.print(f"[bold red]✗[/bold red] {title}\n  [red]{job.status}: {job.error}[/red]")
        return
    c = job.counts
    console.print(f"[bold green]✓[/bold green] {title}")
    if c.faces == 0:
        console.print(f"  nobody appears: no faces in the {c.frames} frame(s) analysed")
        return
    console.print(f"  {_people(job.people)}")
    console.print(
        f"  face-frames: frames analysed {c.frames} ({c.frames_with_faces} with faces) · "
        f"faces {c.faces} · "
        f"masked {c.masked} · unmasked {c.unmasked} · incorrect {c.incorrect} · "
        f"compliance [bold]{_ratio(c.compliance_ratio)}[/bold]"
    )
    if job.worst_moments:
        table = Table(title="worst moments", title_justify="left", show_edge=False)
        for column in ("time", "frame", "faces", "masked", "unmasked", "incorrect"):
            table.add_column(column, justify="right")
        for m in job.worst_moments:
            table.add_row(
                _clock(m.timestamp_s),
                str(m.frame_index),
                str(m.faces),
                str(m.masked),
                str(m.unmasked),
                str(m.incorrect),
            )
        console.print(table)


def render_report(console: Console, report: Report) -> None:
    console.rule("MaskWatch compliance report")
    for job in report.jobs:
        render_job(console, job)
    if len(report.jobs) > 1:
        t = report.totals
        console.rule("all inputs")
        console.print(_people(report.people))
        console.print(
            f"face-frames: jobs {len(report.jobs)} "
            f"({sum(j.status == 'succeeded' for j in report.jobs)} succeeded) · "
            f"frames {t.frames} · faces {t.faces} · masked {t.masked} · "
            f"unmasked {t.unmasked} · incorrect {t.incorrect} · "
            f"compliance [bold]{_ratio(t.compliance_ratio)}[/bold]"
        )
