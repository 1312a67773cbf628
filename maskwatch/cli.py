"""The ``maskwatch`` command: a thin surface over the pipeline, storage and service."""

from __future__ import annotations

import logging

import typer

from maskwatch.commands import (
    alerts,
    analyze,
    classify,
    db,
    evaluation,
    jobs,
    service,
    training,
    worker,
)

app = typer.Typer(
    name="maskwatch",
    help="Face-mask compliance analytics for CCTV footage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug output.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


for commands in (analyze, classify, training, evaluation, db, service, jobs, alerts, worker):
    commands.register(app)

if __name__ == "__main__":
    app()
