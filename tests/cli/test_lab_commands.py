"""The model lab's commands: refused without the lab, and never over shipped weights unasked."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from maskwatch import cli
from maskwatch.settings import DEFAULT_CHECKPOINT

SHIPPED = DEFAULT_CHECKPOINT.parent


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_without_the_lab_its_commands_say_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli, "lab_missing", lambda: ["torchmetrics"])
    app = typer.Typer()
    app.command()(lambda: None)  # a second command, so that typer keeps subcommand names
    cli._register_lab(app)
    result = CliRunner().invoke(app, ["train", "crops", "--out", "x.pt", "--epochs", "1"])
    assert result.exit_code == 2
    assert "`maskwatch train` is a model-lab command" in result.output
    assert "lacks torchmetrics" in result.output
    assert "pip install -e '.[ml]'" in result.output


@pytest.mark.parametrize(
    ("args", "shipped"),
    [
        (["train", "crops", "--out"], "mask_cnn.pt"),
        (["ensemble", str(DEFAULT_CHECKPOINT), str(DEFAULT_CHECKPOINT), "--out"], "mask_cnn.pt"),
        (["train-detector", "shared", "--out"], "mtcnn_finetuned.pt"),
    ],
)
def test_training_refuses_to_overwrite_shipped_weights(args: list[str], shipped: str) -> None:
    target = SHIPPED / shipped
    before = _digest(target)
    result = CliRunner().invoke(cli.app, [*args, str(target)], env={"COLUMNS": "400"})
    assert result.exit_code == 2
    assert "is a shipped model" in result.output and "--overwrite-shipped" in result.output
    assert _digest(target) == before


def test_train_detector_needs_an_output_file() -> None:
    result = CliRunner().invoke(cli.app, ["train-detector", "shared"])
    assert result.exit_code == 2
    assert "--out" in result.output


def test_the_stand_ins_cover_every_lab_command() -> None:
    from ml.commands import register

    lab = typer.Typer()
    register(lab)
    assert sorted(c.name or "" for c in lab.registered_commands) == sorted(cli.LAB_COMMANDS)
