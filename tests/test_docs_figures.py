"""README, the model card and the benchmarks quote the shipped figures of docs/metrics.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
METRICS = json.loads((ROOT / "docs" / "metrics.json").read_text())
DOCS = ("README.md", "docs/model-card.md", "docs/benchmarks.md")
VARIANTS = ("shipped", "fast", "perfect_labels")
# How each figure is written in prose, in the order the figure lines give them.
NAMES = {
    "with_mask_ap": "with_mask AP",
    "without_mask_ap": "without_mask AP",
    "face_recall": "face recall",
    "face_precision": "face precision",
    "compliance_mae": "compliance MAE",
}


def _value(key: str, value: float) -> str:
    # MAE is quoted to its measured digits (0.0525), the others to three places (0.850).
    return repr(value) if key == "compliance_mae" else f"{value:.3f}"


def _interval(key: str, low: float, high: float) -> str:
    digits = 3 if key == "compliance_mae" else 2
    return f"{low:.{digits}f}-{high:.{digits}f}"


def figures_line(variant: str) -> str:
    """The one line that quotes a variant's figures, e.g. "with_mask AP 0.850 (0.79-0.90), ..."."""
    parts = []
    for key, name in NAMES.items():
        figure = METRICS[variant].get(key)
        if figure is None:
            continue
        text = f"{name} {_value(key, figure['value'])}"
        if "interval" in figure:
            text += f" ({_interval(key, *figure['interval'])})"
        parts.append(text)
    return ", ".join(parts)


def test_the_metrics_file_holds_the_shipped_figures() -> None:
    assert figures_line("shipped") == (
        "with_mask AP 0.850 (0.79-0.90), without_mask AP 0.760 (0.62-0.93), "
        "face recall 0.870 (0.81-0.92), face precision 0.890, compliance MAE 0.0525 (0.021-0.092)"
    )
    assert METRICS["evaluation"]["scenes"] == 80


@pytest.mark.parametrize("doc", DOCS)
def test_each_doc_quotes_the_shipped_figures(doc: str) -> None:
    assert figures_line("shipped") in (ROOT / doc).read_text()


@pytest.mark.parametrize(
    ("doc", "variant"),
    [("README.md", "fast"), ("docs/model-card.md", "fast"),
     ("docs/model-card.md", "perfect_labels")],
)
def test_the_other_variants_are_quoted_as_measured(doc: str, variant: str) -> None:
    assert figures_line(variant) in (ROOT / doc).read_text()


@pytest.mark.parametrize("doc", DOCS)
def test_no_doc_quotes_a_figure_the_metrics_file_does_not_hold(doc: str) -> None:
    """A stale "with_mask AP 0.78" anywhere in the current docs fails here."""
    known = {
        name: {_value(key, METRICS[v][key]["value"]) for v in VARIANTS if key in METRICS[v]}
        for key, name in NAMES.items()
    }
    text = (ROOT / doc).read_text()
    for name, allowed in known.items():
        for quoted in re.findall(rf"{name} (\d\.\d+)", text):
            assert quoted in allowed, f"{doc}: '{name} {quoted}' is not in docs/metrics.json"


def test_the_model_card_is_short() -> None:
    assert len((ROOT / "docs" / "model-card.md").read_text().splitlines()) <= 250
