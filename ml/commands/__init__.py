"""The model lab's `maskwatch` commands; maskwatch.cli adds them when the lab is installed."""

from __future__ import annotations

import typer

from ml.commands import evaluation, training


def register(app: typer.Typer) -> None:
    training.register(app)
    evaluation.register(app)
