"""The directory where a worker's pool processes write their metrics (prometheus-client's
multiprocess mode); kept free of prometheus_client imports, since it must be set up first."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: prometheus-client reads it when first imported, to choose file-backed metric values.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_multiprocess_dir(path: Path) -> Path:
    """Make ``path`` an empty directory for this worker's metric files and export it.

    Call before anything imports prometheus_client: the value class is chosen at import.
    Files of an earlier run are removed, since their counters would be added to ours.
    """
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def remove_multiprocess_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
