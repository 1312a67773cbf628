"""What the API commands (`submit`, `jobs`, `reports`, `alerts`) share: options, the client,
how an API error becomes a message and an exit status, and plain-text tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from maskwatch.client import MaskWatchClient

API_OPTION = typer.Option(
    None, "--api", help="API base URL (default: MASKWATCH_API_URL, else where `serve` listens)."
)
KEY_OPTION = typer.Option(None, "--key", help="API key (default: MASKWATCH_API_KEY).")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def connected(api: str | None, key: str | None) -> Iterator[MaskWatchClient]:
    """A client from the options or the settings; exit 2 without a key, 1 on an API error."""
    from maskwatch.client import ApiError, MaskWatchClient, NoApiKey  # httpx: when used

    try:
        client = MaskWatchClient.from_settings(api, key)
    except NoApiKey as exc:
        fail(str(exc), 2)
    try:
        with client:
            yield client
    except ApiError as exc:
        fail(str(exc))


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Columns padded to their widest cell; None shows as '-'."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    for line in [list(header), *cells]:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def print_listing(
    items: Sequence[dict[str, Any]],
    as_json: bool,
    header: Sequence[str],
    row: Callable[[dict[str, Any]], Sequence[Any]],
) -> None:
    """A listing command's output: ``items`` as JSON with --json, else one table row each."""
    if as_json:
        print_json(items)
    else:
        print_table(header, [row(item) for item in items])


def percent(ratio: float | None) -> str | None:
    return None if ratio is None else f"{ratio * 100:.1f} %"
