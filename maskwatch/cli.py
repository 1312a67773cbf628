"""The ``maskwatch`` command: a thin surface over the pipeline, storage and service."""

from __future__ import annotations

import importlib.util
import logging

import typer

from maskwatch.commands import alerts, analyze, classify, db, jobs, service, worker

# The model lab's commands (ml/, the `[ml]` extra), and the packages they need beyond the service.
LAB_COMMANDS = ("prepare-data", "train", "evaluate", "ensemble", "train-detector",
                "evaluate-scenes")
LAB_PACKAGES = ("ml", "torchmetrics", "pycocotools")

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


def lab_missing() -> list[str]:
    """The lab's packages this installation lacks (none: the lab commands are available)."""
    missing = []
    for name in LAB_PACKAGES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:  # a finder that knows the package is not there may say so
            found = False
        if not found:
            missing.append(name)
    return missing


def _register_lab(app: typer.Typer) -> None:
    """Add the lab's commands, or, without the lab, stand-ins that say how to get them."""
    missing = lab_missing()
    if not missing:
        from ml.commands import register  # imported only when the lab is there

        register(app)
        return

    def unavailable(ctx: typer.Context) -> None:
        typer.echo(
            f"error: `maskwatch {ctx.info_name}` is a model-lab command, and this installation "
            f"lacks {', '.join(missing)}: install the lab with `pip install -e '.[ml]'` "
            "from a source checkout",
            err=True,
        )
        raise typer.Exit(2)

    for name in LAB_COMMANDS:
        app.command(
            name,
            help="Model lab (needs the [ml] extra).",
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        )(unavailable)


for commands in (analyze, classify, db, service, jobs, alerts, worker):
    commands.register(app)
_register_lab(app)

if __name__ == "__main__":
    app()
