"""The two-PNet first stage (worker.pipeline.detect.UnionNet) and how it is trained and loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SCENES = Path(__file__).resolve().parents[1] / "evaluation" / "fixtures"
SCENE_IDS = ("maksssksksss125", "maksssksksss523")


def test_union_answers_with_the_surer_pnet() -> None:
    from facenet_pytorch.models.mtcnn import PNet

    from worker.pipeline.detect import UnionNet

    torch.manual_seed(0)
    first, second = PNet(pretrained=False).eval(), PNet(pretrained=False).eval()
    x = torch.randn(2, 3, 40, 50)
    with torch.inference_mode():
        reg1, prob1 = first(x)
        reg2, prob2 = second(x)
        reg, prob = UnionNet(first, second)(x)
    assert torch.equal(prob[:, 1], torch.maximum(prob1[:, 1], prob2[:, 1]))
    second_wins = (prob2[:, 1] > prob1[:, 1]).unsqueeze(1)
    assert 0 < int(second_wins.sum()) < second_wins.numel()  # both sides are exercised
    assert torch.equal(reg, torch.where(second_wins, reg2, reg1))
    assert torch.allclose(prob.sum(1), torch.ones(()))  # still a distribution per cell


class _Fixed(torch.nn.Module):
    """A stage that answers fixed (reg, landmarks, prob) rows, like ONet does per box."""

    def __init__(self, face_prob: list[float], offset: float) -> None:
        super().__init__()
        prob = torch.tensor(face_prob)
        self.rows = (torch.full((len(prob), 4), offset), torch.full((len(prob), 10), offset),
                     torch.stack([1 - prob, prob], 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.rows


def test_union_of_box_stages_picks_whole_rows() -> None:
    """RNet/ONet answer one row per box: reg, landmarks and prob all come from one network."""
    from worker.pipeline.detect import UnionNet

    first = _Fixed([0.9, 0.2, 0.5], offset=1.0)
    second = _Fixed([0.1, 0.8, 0.5], offset=2.0)
    reg, landmarks, prob = UnionNet(first, second)(torch.zeros(3, 3, 48, 48))
    assert prob[:, 1].tolist() == pytest.approx([0.9, 0.8, 0.5])
    assert reg[:, 0].tolist() == [1.0, 2.0, 1.0]  # a tie keeps the first network's answer
    assert landmarks[:, 0].tolist() == [1.0, 2.0, 1.0]


def _detect(weights: str | None, frame: np.ndarray) -> np.ndarray:
    from maskwatch.core.analysis import DetectorConfig
    from worker.pipeline.detect import MTCNNDetector

    config = DetectorConfig(detector_weights=weights)
    return MTCNNDetector(config, torch.device("cpu")).detect([frame])[0].xyxy


@pytest.mark.slow
def test_union_of_a_pnet_with_itself_detects_what_it_detects(tmp_path: Path) -> None:
    """Wiring check on a real scene: joining the stock PNet to a copy of itself changes nothing,
    and the file loads as a union without nesting when loaded twice."""
    from facenet_pytorch import MTCNN

    from worker.pipeline.detect import UnionNet, load_detector_weights

    stock = MTCNN(device="cpu")
    path = tmp_path / "union.pt"
    torch.save({"pnet_masked": stock.pnet.state_dict(), "info": {}}, path)
    target = MTCNN(device="cpu")
    for _ in range(2):
        load_detector_weights(target, str(path), torch.device("cpu"))
        assert isinstance(target.pnet, UnionNet)
        assert not isinstance(target.pnet.first, UnionNet)

    frame = np.asarray(Image.open(SCENES / "images" / "maksssksksss523.jpg").convert("RGB"))
    plain = _detect(None, frame)
    union = _detect(str(path), frame)
    assert len(plain) >= 1
    np.testing.assert_allclose(union, plain, atol=1e-3)


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ../shared look-alike holding the two committed kaggle fixture scenes."""
    root = tmp_path_factory.mktemp("shared")
    scenes = root / "datasets" / "kaggle-scenes-dev"
    for sub, ext in (("annotations", "xml"), ("images", "jpg")):
        (scenes / sub).mkdir(parents=True)
        for scene in SCENE_IDS:
            name = f"{scene}.{ext}"
            (scenes / sub / name).write_bytes((SCENES / sub / name).read_bytes())
    (root / "split.txt").write_text("\n".join(SCENE_IDS) + "\n")
    return root


@pytest.mark.slow
def test_train_detector_pnet_union_keeps_the_first_pnet(shared_dir: Path, tmp_path: Path) -> None:
    from facenet_pytorch import MTCNN
    from typer.testing import CliRunner

    from maskwatch.cli import app
    from worker.pipeline.detect import UnionNet, load_detector_weights

    out = tmp_path / "union.pt"
    split = str(shared_dir / "split.txt")
    result = CliRunner().invoke(app, [
        "train-detector", str(shared_dir), "--out", str(out), "--stages", "pnet",
        "--pnet-union", "--pnet-epochs", "1", "--split-file", split, "--val-split-file", split,
    ])
    assert result.exit_code == 0, result.output
    assert "union of both PNets (val windows)" in result.output

    state = torch.load(out, weights_only=True)
    stock = MTCNN(device="cpu")
    for key, value in stock.pnet.state_dict().items():
        assert torch.equal(state["pnet"][key], value)  # the first PNet is untouched
    assert any(not torch.equal(state["pnet_masked"][k], v)
               for k, v in stock.pnet.state_dict().items())  # the second one was trained
    assert state["info"]["pnet_union"] is True

    target = MTCNN(device="cpu")
    load_detector_weights(target, str(out), torch.device("cpu"))
    assert isinstance(target.pnet, UnionNet)
    frame = np.asarray(Image.open(SCENES / "images" / "maksssksksss125.jpg").convert("RGB"))
    assert len(_detect(str(out), frame)) >= 1


@pytest.mark.slow
def test_train_detector_keeps_a_union_it_does_not_train(shared_dir: Path, tmp_path: Path) -> None:
    """An init file with a second ONet: training PNet saves that ONet pair as it was (loadable),
    and retraining ONet itself is refused rather than training two nets as one."""
    from facenet_pytorch import MTCNN
    from typer.testing import CliRunner

    from maskwatch.cli import app
    from worker.pipeline.detect import UnionNet, load_detector_weights

    stock = MTCNN(device="cpu")
    init = tmp_path / "init.pt"
    torch.save({"onet_masked": stock.onet.state_dict(), "info": {}}, init)
    split = str(shared_dir / "split.txt")
    common = [str(shared_dir), "--init", str(init), "--split-file", split,
              "--val-split-file", split, "--pnet-epochs", "1", "--epochs", "1"]

    refused = CliRunner().invoke(app, ["train-detector", *common, "--out",
                                       str(tmp_path / "no.pt"), "--stages", "onet"])
    assert refused.exit_code == 2
    assert "onet" in refused.output and "two nets" in refused.output
    assert not (tmp_path / "no.pt").exists()

    out = tmp_path / "pnet.pt"
    result = CliRunner().invoke(app, ["train-detector", *common, "--out", str(out),
                                      "--stages", "pnet"])
    assert result.exit_code == 0, result.output
    state = torch.load(out, weights_only=True)
    assert {"pnet", "rnet", "onet", "onet_masked"} <= set(state)
    for key, value in stock.onet.state_dict().items():
        assert torch.equal(state["onet"][key], value)
        assert torch.equal(state["onet_masked"][key], value)
    target = MTCNN(device="cpu")
    load_detector_weights(target, str(out), torch.device("cpu"))
    assert isinstance(target.onet, UnionNet) and not isinstance(target.pnet, UnionNet)


@pytest.mark.slow
def test_train_detector_trains_on_some_grey_crops_and_records_it(
    shared_dir: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from maskwatch.cli import app

    split = str(shared_dir / "split.txt")
    out = tmp_path / "grey.pt"
    result = CliRunner().invoke(app, [
        "train-detector", str(shared_dir), "--split-file", split, "--val-split-file", split,
        "--stages", "onet", "--epochs", "1", "--grey-fraction", "0.5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    info = torch.load(out, weights_only=True)["info"]
    assert info["rnet_onet"]["config"]["grey_fraction"] == 0.5
    refused = CliRunner().invoke(app, ["train-detector", str(shared_dir), "--out",
                                       str(tmp_path / "no.pt"), "--grey-fraction", "1.5"])
    assert refused.exit_code == 2
