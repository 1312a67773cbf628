"""`maskwatch db`: schema migrations."""

from __future__ import annotations

import typer

db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(
    db: str = typer.Option(None, help="Database URL (default: MASKWATCH_DATABASE_URL)."),
    revision: str = typer.Option("head", help="Target revision."),
) -> None:
    """Apply migrations up to REVISION."""
    from maskwatch.runtime import SetupError, database_access
    from maskwatch.settings import get_settings
    from storage.db import current_revision, upgrade

    url = db or get_settings().database_url
    try:
        with database_access(url):
            upgrade(url, revision)
            typer.echo(f"database at revision {current_revision(url)}")
    except SetupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@db_app.command("current")
def db_current(db: str = typer.Option(None, help="Database URL.")) -> None:
    """Print the schema revision the database is at."""
    from maskwatch.runtime import SetupError, database_access
    from maskwatch.settings import get_settings
    from storage.db import current_revision

    url = db or get_settings().database_url
    try:
        with database_access(url):
            revision = current_revision(url)
    except SetupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(revision or "empty (no migrations)")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
