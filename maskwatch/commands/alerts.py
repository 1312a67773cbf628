"""`maskwatch alerts add|list|show|remove|deliveries`: alert rules and their webhook log."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import typer

from maskwatch.commands.remote import (
    API_OPTION,
    KEY_OPTION,
    connected,
    print_json,
    print_listing,
)

alerts_app = typer.Typer(
    help="Alert rules (webhooks) on a MaskWatch API; see docs/deployment.md.",
    no_args_is_help=True,
)
RULE_ID = typer.Argument(..., help="The rule's id.")


class Kind(StrEnum):
    COMPLIANCE_BELOW = "compliance-below"
    JOB_FAILED = "job-failed"
    JOB_FINISHED = "job-finished"


class Measure(StrEnum):
    FACE_FRAMES = "face-frames"
    PEOPLE = "people"


@alerts_app.command("add")
def alerts_add(
    kind: Kind = typer.Argument(..., help="compliance-below, job-failed or job-finished."),
    url: str = typer.Option(..., "--url", help="The webhook that receives a signed JSON POST."),
    site: str = typer.Option(None, help="The site (a site key implies its own)."),
    camera: str = typer.Option(None, help="One camera (default: every camera of the site)."),
    below: float = typer.Option(
        None, "--below", help="compliance-below: fire under this compliance, in percent."
    ),
    window: float = typer.Option(
        None, "--window", help="compliance-below: minutes of footage looked at, ending at the "
        "last frame of the job that finished."
    ),
    min_faces: int = typer.Option(
        1, "--min-faces", min=1, help="Fewer faces (people, with --measure people) say too little."
    ),
    measure: Measure = typer.Option(
        "face-frames", "--measure", help="compliance-below: count face-frames (every face in "
        "every analysed frame) or people (each person once, by what they wore longest)."
    ),
    api: str = API_OPTION,
    key: str = KEY_OPTION,
) -> None:
    """Add a rule; prints it as JSON with its signing secret, which is shown only now."""
    with connected(api, key) as client:
        rule = client.create_rule(
            kind=kind.value.replace("-", "_"),
            url=url,
            site=site,
            camera=camera,
            threshold_percent=below,
            window_minutes=window,
            min_faces=min_faces,
            measure=measure.value.replace("-", "_"),
        )
    typer.echo(
        f"created rule {rule['id']}; its secret signs every webhook and is shown only once",
        err=True,
    )
    print_json(rule)


def _rule_row(rule: dict[str, Any]) -> list[Any]:
    condition = {
        "compliance_below": f"< {rule['threshold_percent']:g} % of "
        f"{rule['measure'].replace('_', '-')} over {(rule['window_s'] or 0) / 60:g} min",
    }.get(rule["kind"], "")
    return [rule["id"], rule["kind"], rule["site"], rule["camera"] or "*", condition, rule["url"]]


@alerts_app.command("list")
def alerts_list(
    as_json: bool = typer.Option(False, "--json", help="Print the rules as JSON."),
    api: str = API_OPTION,
    key: str = KEY_OPTION,
) -> None:
    """The rules this key may see."""
    with connected(api, key) as client:
        rules = client.rules()
    print_listing(rules, as_json, ("id", "kind", "site", "camera", "condition", "url"), _rule_row)


@alerts_app.command("show")
def alerts_show(rule_id: int = RULE_ID, api: str = API_OPTION, key: str = KEY_OPTION) -> None:
    """Print one rule as JSON (never its secret)."""
    with connected(api, key) as client:
        print_json(client.rule(rule_id))


@alerts_app.command("remove")
def alerts_remove(rule_id: int = RULE_ID, api: str = API_OPTION, key: str = KEY_OPTION) -> None:
    """Delete a rule and its delivery log."""
    with connected(api, key) as client:
        client.delete_rule(rule_id)
    typer.echo(f"removed rule {rule_id}", err=True)


@alerts_app.command("deliveries")
def alerts_deliveries(
    rule: int = typer.Option(None, "--rule", help="Only this rule's deliveries."),
    status: str = typer.Option(None, help="pending, delivered or failed."),
    limit: int = typer.Option(50, min=1, max=200, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print them as JSON, with every try."),
    api: str = API_OPTION,
    key: str = KEY_OPTION,
) -> None:
    """The webhook delivery log: each delivery, its tries and the receiver's status codes."""
    with connected(api, key) as client:
        found = client.deliveries(rule_id=rule, status=status, limit=limit)
    header = ("id", "rule", "event", "job", "status", "tries", "codes", "last error")
    print_listing(found, as_json, header, _delivery_row)


def _delivery_row(d: dict[str, Any]) -> list[Any]:
    codes = ",".join("-" if a["status_code"] is None else str(a["status_code"]) for a in d["log"])
    return [
        d["id"], d["rule_id"], d["event"], d["job_id"], d["status"], d["attempts"], codes,
        d["last_error"],
    ]  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
