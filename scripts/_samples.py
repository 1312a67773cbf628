"""What the builders of the bundled samples (``make_sample_video.py``,
``make_people_sample.py``) share: where they write, and how they write a sample's truth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from _repo import ROOT

SAMPLES_DIR = ROOT / "worker" / "samples"


def out_dir_from_args(description: str | None) -> Path:
    """The ``--out-dir`` of the command line (default: worker/samples)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out-dir", type=Path, default=SAMPLES_DIR)
    out_dir: Path = parser.parse_args().out_dir
    return out_dir


def write_truth(path: Path, truth: dict[str, Any]) -> Path:
    """A sample's truth as the committed sidecars hold it: JSON indented by 2, a final newline."""
    path.write_text(json.dumps(truth, indent=2) + "\n")
    return path
