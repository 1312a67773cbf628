"""The repository root, made importable: each script here runs as ``python scripts/NAME.py``
(its own folder first on ``sys.path``) and imports ``ROOT`` from this module first."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
