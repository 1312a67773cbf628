"""The service image installs without the [ml] extra and without ml/: nothing it runs needs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a fresh interpreter importing torch

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter in which the lab and its extra cannot be imported.
WITHOUT_LAB = """
import importlib.abc, sys

class NoLab(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ml", "torchmetrics", "pycocotools"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoLab())
import api.app, worker.tasks, worker.process, worker.jobs
from typer.testing import CliRunner
from maskwatch.cli import app

assert CliRunner().invoke(app, ["--help"]).exit_code == 0
result = CliRunner().invoke(app, ["evaluate-scenes", "scenes"])
print(result.exit_code, result.output)
"""


def test_the_service_runs_without_the_model_lab() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_LAB], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2 ")
    assert "`maskwatch evaluate-scenes` is a model-lab command" in done.stdout
