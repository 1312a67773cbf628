"""Each command imports only what it needs: `maskwatch --help`, the API commands and the API
itself start without torch and the vision libraries (issue 14: start-up under 1.5 s; torch and
torchvision alone took ~3 s of a quiet machine's start-up, 17 s under load)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What analysing needs and nothing else does.
HEAVY = ("torch", "torchvision", "facenet_pytorch", "cv2", "torchmetrics", "scipy", "supervision")

# Runs in a fresh interpreter: after the import and after each command, which of HEAVY (and
# SQLAlchemy) are loaded. Nothing listens on port 9: the API commands fail to connect, after
# going all the way through their client.
COMMANDS = """
import json, sys
HEAVY = %(heavy)r

def loaded():
    return sorted(m for m in (*HEAVY, "sqlalchemy") if m in sys.modules)

from maskwatch.cli import app
print(json.dumps({"args": ["import maskwatch.cli"], "code": 0, "loaded": loaded()}))
from typer.testing import CliRunner
api = ["--api", "http://127.0.0.1:9", "--key", "mw_test"]
for args in (
    ["--help"], ["analyze", "--help"], ["jobs", "list", *api], ["jobs", "show", "j1", *api],
    ["reports", "--format", "csv", *api], ["alerts", "list", *api], ["submit", "--help"],
    ["db", "current", "--db", %(db)r],
):
    result = CliRunner().invoke(app, args)
    print(json.dumps({"args": args, "code": result.exit_code, "loaded": loaded(),
                      "output": result.output[-300:]}))
"""


def run_fresh(code: str) -> list[dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_WAIT_POLICY", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_the_cli_and_its_api_commands_start_without_torch(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    steps = run_fresh(COMMANDS % {"heavy": HEAVY, "db": db})
    assert [s["args"][0] for s in steps] == [
        "import maskwatch.cli", "--help", "analyze", "jobs", "jobs", "reports", "alerts",
        "submit", "db",
    ]
    for step in steps:
        assert [m for m in step["loaded"] if m in HEAVY] == [], step  # type: ignore[union-attr]
    by_command = {" ".join(s["args"][:2]): s for s in steps}  # type: ignore[index]
    # Only the database commands load SQLAlchemy.
    assert all("sqlalchemy" not in s["loaded"] for s in steps[:-1])  # type: ignore[operator]
    # The commands ran: help printed, the API ones reached their client and failed to connect.
    assert by_command["--help"]["code"] == 0
    assert "Alert rules" in str(by_command["--help"]["output"])
    for command in ("jobs list", "jobs show", "reports --format", "alerts list"):
        assert by_command[command]["code"] == 1, by_command[command]
        assert "error:" in str(by_command[command]["output"])
    assert by_command["db current"]["code"] == 0, by_command["db current"]


def test_the_api_starts_without_torch() -> None:
    [step] = run_fresh(
        "import json, sys\nimport api.app\n"
        f"print(json.dumps({{'loaded': sorted(m for m in {HEAVY!r} if m in sys.modules)}}))"
    )
    assert step["loaded"] == []


# Records OMP_WAIT_POLICY as it is when torch is first imported.
OMP_AT_TORCH = """
import importlib.abc, json, os, sys

class Watch(importlib.abc.MetaPathFinder):
    seen = None
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and Watch.seen is None:
            Watch.seen = os.environ.get("OMP_WAIT_POLICY", "unset")
        return None

sys.meta_path.insert(0, Watch())
import %(module)s
%(then)s
print(json.dumps({"policy": Watch.seen}))
"""


@pytest.mark.slow  # fresh interpreters importing torch
@pytest.mark.parametrize(
    ("module", "then"),
    [
        ("worker.tasks", ""),  # the Celery worker's parent, before it forks its pool
        ("maskwatch.cli", "import worker.pipeline.analyze"),  # `maskwatch analyze`
        ("worker.local", ""),  # a spawned segment process (its start-up function is here)
    ],
)
def test_analysis_processes_load_torch_with_passive_openmp_waits(module: str, then: str) -> None:
    [step] = run_fresh(OMP_AT_TORCH % {"module": module, "then": then or "import torch"})
    assert step["policy"] == "PASSIVE"
