"""`maskwatch evaluate-scenes` end to end: real MTCNN on the committed fixture scenes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from maskwatch.settings import get_settings
from ml.commands import evaluation
from worker.pipeline.classify import Checkpoint, CropPreset, MaskCNN

pytestmark = pytest.mark.slow  # real models over images or video

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def always_masked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier that calls every face with_mask (p = 0.98), so the counts are hand-checkable."""
    model = MaskCNN(2)
    head = model.head[-1]
    assert isinstance(head, torch.nn.Linear)
    torch.nn.init.zeros_(head.weight)
    head.bias.data = torch.tensor([4.0, 0.0])
    path = tmp_path_factory.mktemp("model") / "always_masked.pt"
    Checkpoint("mask_cnn", ("with_mask", "without_mask"), CropPreset(), model.state_dict()).save(
        path
    )
    return path


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[typer.Typer]:
    monkeypatch.setenv("MASKWATCH_TORCH_THREADS", "1")
    monkeypatch.setenv("MASKWATCH_DEVICE", "cpu")
    get_settings.cache_clear()
    app = typer.Typer()
    app.callback()(lambda: None)
    evaluation.register(app)
    yield app
    get_settings.cache_clear()


def run(app: typer.Typer, *args: str) -> str:
    result = CliRunner().invoke(
        app, ["evaluate-scenes", str(FIXTURES / "annotations"), str(FIXTURES / "images"), *args]
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_json_report(cli: typer.Typer, always_masked: Path) -> None:
    report = json.loads(run(cli, "--checkpoint", str(always_masked), "--json"))
    assert report["scenes"] == 3
    assert report["settings"]["min_face_size"] == 20
    assert report["settings"]["mirror_faces"] is True  # the shipped default
    # 125: one without_mask face; 523: one without_mask, one with_mask; blank: one with_mask
    # nobody can find, and a difficult box. MTCNN finds the three real faces.
    assert report["gt_faces"] == {"with_mask": 2, "without_mask": 2, "incorrect_mask": 0}
    assert report["gt_difficult"] == 1
    faces = report["faces"]
    assert (faces["gt"], faces["predicted"], faces["recall"]) == (4, 3, 0.75)
    assert faces["recall_by_size"]["32-64"] == {"gt": 1, "recall": 0.0}
    assert faces["recall_by_size"][">=64"] == {"gt": 3, "recall": 1.0}
    # every face called with_mask: 1 of 3 right, 1 of 2 found
    with_mask = report["per_class"]["with_mask"]["operating"]
    assert (with_mask["predictions"], with_mask["true_positives"]) == (3, 1)
    assert (with_mask["precision"], with_mask["recall"]) == (pytest.approx(1 / 3), 0.5)
    assert report["per_class"]["without_mask"]["ap"] == 0.0
    # 125: truth 0, predicted 1; 523: 1/2 vs 1; blank: missed, worst case 1
    compliance = report["compliance"]
    assert compliance["mae"] == pytest.approx((1 + 1 / 2 + 1) / 3)
    assert (compliance["scenes"], compliance["scenes_missed"]) == (3, 1)
    assert report["timing"]["images"] == 3
    assert report["timing"]["ms_per_image"] > 0


def test_no_mirror_reads_faces_plain_and_says_so(cli: typer.Typer) -> None:
    # the shipped classifier: its two readings of a face differ a little
    mirrored = json.loads(run(cli, "--json", "--bootstrap", "0"))
    plain = json.loads(run(cli, "--json", "--no-mirror", "--bootstrap", "0"))
    assert (mirrored["settings"]["mirror_faces"], plain["settings"]["mirror_faces"]) == (
        True, False)
    assert plain["scenes"] == mirrored["scenes"] == 3
    assert plain["faces"]["predicted"] == mirrored["faces"]["predicted"] == 3  # same detector
    cut = {name: r["per_class"]["without_mask"]["best_f1"]["threshold"]  # = the face's score
           for name, r in (("mirrored", mirrored), ("plain", plain))}
    assert cut["mirrored"] != cut["plain"]


def test_bootstrap_rounds_option(cli: typer.Typer, always_masked: Path) -> None:
    report = json.loads(run(cli, "--checkpoint", str(always_masked), "--json",
                            "--bootstrap", "50"))
    assert report["intervals"]["rounds"] == 50
    low, high = report["intervals"]["mae"]
    assert low <= report["compliance"]["mae"] <= high
    none = json.loads(run(cli, "--checkpoint", str(always_masked), "--json", "--bootstrap", "0"))
    assert none["intervals"] is None


def test_table_and_options(cli: typer.Typer, always_masked: Path, tmp_path: Path) -> None:
    split = tmp_path / "val.txt"
    split.write_text("maksssksksss125\nmaksssksksss523\n")
    out = run(
        cli,
        "--checkpoint",
        str(always_masked),
        "--split-file",
        str(split),
        "--thresholds",
        "0.5,0.6,0.6",
        "--upscale",
        "1.5",
        "--min-face-size",
        "24",
    )
    assert "2 scenes, IoU 0.5" in out
    assert "1.000 of 3" in out  # face recall: the three faces of the two real scenes
    # compliance errors 1 and 1/2
    assert "AP, 95% interval (bootstrap over scenes): with_mask" in out
    # the bootstrap's draws of two: both 1 (MAE 1), one each (0.75), both 1/2 (0.5)
    assert "compliance MAE 0.750 (95% 0.500-1.000) over 2 scenes (0 with no face found" in out


def test_bad_thresholds_are_refused(cli: typer.Typer) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "evaluate-scenes",
            str(FIXTURES / "annotations"),
            str(FIXTURES / "images"),
            "--thresholds",
            "0.6,0.7",
        ],
    )
    assert result.exit_code == 2
    assert "expected three numbers" in result.output


def test_two_merged_detectors_are_scored_and_a_missing_file_is_refused(
    cli: typer.Typer, always_masked: Path
) -> None:
    merged = json.loads(run(cli, "--json", "--checkpoint", str(always_masked),
                            "--detector-weights", "mtcnn_finetuned.pt+mtcnn_union.pt"))
    alone = json.loads(run(cli, "--json", "--checkpoint", str(always_masked)))
    assert merged["settings"]["detector_weights"] == "mtcnn_finetuned.pt+mtcnn_union.pt"
    # the merge keeps every face the shipped detector finds on the two fixture scenes
    assert merged["faces"]["recall"] >= alone["faces"]["recall"] > 0

    result = CliRunner().invoke(cli, [
        "evaluate-scenes", str(FIXTURES / "annotations"), str(FIXTURES / "images"),
        "--detector-weights", "mtcnn_finetuned.pt+no_such_weights.pt"])
    assert result.exit_code == 2
    assert "no_such_weights.pt" in result.output
