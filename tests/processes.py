"""Processes the slow tests start: `maskwatch` CLI processes, free ports, their environment.

Shared by the end-to-end tests (tests/api/test_e2e*.py), the distributed tests' worker
fleets and the cluster scripts, so that every one starts the service the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from maskwatch.settings import Settings
from tests.polling import wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shipped_checkpoint() -> Path:
    """The classifier checkpoint workers load (or MASKWATCH_CHECKPOINT); fails loudly without."""
    path = Settings().checkpoint
    if not path.is_file():
        pytest.fail(f"classifier checkpoint missing: {path} (or set MASKWATCH_CHECKPOINT)")
    return path


def with_repo_path(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the repository first on PYTHONPATH, so a child imports this checkout."""
    paths = [str(REPO_ROOT), env.get("PYTHONPATH")]
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, paths))}


def popen_maskwatch(
    args: list[str], env: Mapping[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """`maskwatch ARGS` in a session of its own (its group is its children: pool, ffmpeg),
    its output in ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "maskwatch.cli", *args],
            cwd=REPO_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@dataclass
class Process:
    """A process this test started in its own session, with its output in a log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"{self.name} exited ({self.proc.returncode}):\n{self.log()[-4000:]}"
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
        # The process leads its own session: its group is its children (pool, ffmpeg).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=15)


def start(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Process:
    """`maskwatch ARGS` as the process ``name``, logging to ``log_dir``/NAME.log."""
    log_path = log_dir / f"{name}.log"
    return Process(name, popen_maskwatch(args, env, log_path), log_path)


def wait_for_api(api: Process, url: str, timeout_s: float) -> None:
    """Wait until `maskwatch serve` answers ``url``/healthz; fail at once if it exited."""

    def up() -> bool:
        api.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        return False

    wait_for(up, timeout_s, f"{api.name} to answer {url}/healthz")


def create_key(env: Mapping[str, str], name: str, site: str) -> str:
    """A new site key from `maskwatch keys create` run with ``env``."""
    created = subprocess.run(
        [sys.executable, "-m", "maskwatch.cli", "keys", "create", "--name", name, "--site", site],
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return created.stdout.strip()
