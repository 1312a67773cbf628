"""`maskwatch serve`, `keys` and `submit`: the HTTP API, its keys, and uploading footage."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from maskwatch.commands.remote import API_OPTION, KEY_OPTION, connected, print_json

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

logger = logging.getLogger(__name__)

keys_app = typer.Typer(help="API keys for the HTTP API.", no_args_is_help=True)

DB_OPTION = typer.Option(None, "--db", help="Database URL (default: MASKWATCH_DATABASE_URL).")
KEY_ID_ARGUMENT = typer.Argument(..., help="The key's id (printed by `keys create`).")
FILE_ARGUMENT = typer.Argument(
    ..., exists=True, dir_okay=False, readable=True, help="Video or image file."
)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _key_sessions(db: str | None) -> sessionmaker[Session]:
    """Sessions on ``db`` or the configured database (the embedded SQLite file is migrated)."""
    from maskwatch.runtime import SetupError, open_database
    from maskwatch.settings import get_settings

    url = db or get_settings().database_url
    try:
        return open_database(url, auto_upgrade=url.startswith("sqlite"))
    except SetupError as exc:
        _fail(str(exc), 2)


def serve(
    host: str = typer.Option(None, help="Address to listen on (default: MASKWATCH_API_HOST)."),
    port: int = typer.Option(None, help="Port to listen on (default: MASKWATCH_API_PORT)."),
) -> None:
    """Run the HTTP API (uvicorn) on the configured database and job queue.

    The API commands (`submit`, `jobs`, `reports`, `alerts`, maskwatch.client) send to
    MASKWATCH_API_URL, or else to http://MASKWATCH_API_HOST:MASKWATCH_API_PORT: set the
    URL when the server runs elsewhere or with another --port.
    """
    import uvicorn

    from api.app import create_app
    from maskwatch.runtime import SetupError, open_database
    from maskwatch.settings import get_settings

    settings = get_settings()
    try:
        open_database(
            settings.database_url, auto_upgrade=settings.database_url.startswith("sqlite")
        )
    except SetupError as exc:
        _fail(str(exc), 2)
    root = logging.getLogger()
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="info",
        # Access lines show method, path and query only: keys travel in a header, never logged.
        access_log=True,
    )


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., "--name", help="Who or what the key is for."),
    site: str = typer.Option(None, "--site", help="Limit the key to this site's cameras and jobs."),
    admin: bool = typer.Option(False, "--admin", help="An administrator key for every site."),
    db: str = DB_OPTION,
) -> None:
    """Create an API key and print it once on stdout; only its hash is stored."""
    from storage.repositories import api_keys as key_repo

    if site is not None and admin:
        _fail("--site and --admin exclude each other", 2)
    if site is not None and not site.strip():
        _fail("--site must not be empty", 2)
    session_factory = _key_sessions(db)
    with session_factory() as session:
        api_key, plaintext = key_repo.create_api_key(session, name=name, site=site, is_admin=admin)
        session.commit()
        scope = "admin, every site" if admin else (f"site {site}" if site else "every site")
        typer.echo(f"created key {api_key.id} '{name}' ({scope}); it is shown only once", err=True)
    typer.echo(plaintext)


@keys_app.command("revoke")
def keys_revoke(
    key_id: int = typer.Argument(..., help="The key's id."), db: str = DB_OPTION
) -> None:
    """Revoke an API key: requests with it are refused from now on."""
    from storage.models import ApiKey
    from storage.repositories import api_keys as key_repo

    session_factory = _key_sessions(db)
    with session_factory() as session:
        api_key = session.get(ApiKey, key_id)
        if api_key is None:
            _fail(f"no key with id {key_id}")
        key_repo.revoke_api_key(session, api_key)
        session.commit()
    typer.echo(f"revoked key {key_id}", err=True)


def submit(
    file: Path = FILE_ARGUMENT,
    camera: str = typer.Option(..., "--camera", help="Camera the footage comes from."),
    site: str = typer.Option(None, "--site", help="Site of the camera (a site key implies it)."),
    recorded_at: str = typer.Option(
        None, "--recorded-at", help="Wall-clock start of the footage, ISO 8601 with offset."
    ),
    detector: str = typer.Option(
        None, "--detector", help="accurate (two detectors merged) or fast (one, 1.4-2x the "
        "speed); default: the server's configured detector."
    ),
    wait: bool = typer.Option(False, "--wait", help="Wait until the job finishes."),
    poll_s: float = typer.Option(2.0, "--poll", help="Seconds between status checks."),
    api: str = API_OPTION,
    key: str = KEY_OPTION,
) -> None:
    """Upload footage to the API for analysis; print the job as JSON.

    Exit status: 0 when accepted (with --wait: when the job succeeded), 1 when the server
    refused it or the job failed or was cancelled, 2 on a usage error such as a missing key.
    """
    with connected(api, key) as client:
        job = client.submit(
            file, camera, site=site, recorded_at=recorded_at, detector=detector
        )
        typer.echo(f"job {job['id']} {job['status']}", err=True)
        if wait:
            job = client.wait(job["id"], poll_s=poll_s, on_update=_show_progress())
            if job["error"]:
                typer.echo(f"job {job['id']} {job['status']}: {job['error']}", err=True)
    print_json(job)
    if wait and job["status"] != "succeeded":
        raise typer.Exit(1)


def _show_progress() -> Any:
    """Prints a job's status and frame count on stderr each time they change."""
    shown: list[str] = []

    def show(job: dict[str, Any]) -> None:
        progress = job["progress"]
        line = f"{job['status']} {progress['frames_done']}/{progress['frames_total'] or '?'} frames"
        if not shown or line != shown[-1]:
            typer.echo(line, err=True)
            shown.append(line)

    return show


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(submit)
    app.add_typer(keys_app, name="keys")
