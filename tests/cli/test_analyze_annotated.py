"""`maskwatch analyze --annotated-video OUT.mp4`: the analysed frames with their faces boxed and
labelled (and blurred with --blur-faces), as H.264 that our own decoder reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from maskwatch.cli import app
from storage.models import FaceDetection
from worker.pipeline.decode import iter_frames, probe
from worker.pipeline.render import build_h264_args

pytestmark = pytest.mark.slow  # real models over generated video

RED = np.array([230, 0, 0])


@pytest.mark.parametrize(
    ("out", "fps", "size", "expected"),
    [
        (Path("/v/out.mp4"), 2.0, (640, 360), ["-r", "2", "-s", "640x360", "file:/v/out.mp4"]),
        (Path("/v/-odd:name.mp4"), 0.5, (641, 359), ["-r", "0.5", "-s", "641x359",
                                                     "file:/v/-odd:name.mp4"]),
    ],
)
def test_encode_args(out: Path, fps: float, size: tuple[int, int], expected: list[str]) -> None:
    args = build_h264_args(out, fps=fps, size_wh=size)
    assert args[0] == "ffmpeg" and "-nostdin" in args
    assert args[args.index("-r") : args.index("-r") + 2] == expected[:2]
    assert args[args.index("-s") : args.index("-s") + 2] == expected[2:4]
    assert args[-1] == expected[4]  # never read as an option or a protocol
    assert args[args.index("-c:v") + 1] == "libx264"
    assert "pad=ceil(iw/2)*2:ceil(ih/2)*2" in args  # yuv420p needs even sides


def analyze(runner: CliRunner, db_url: str, video: Path, out: Path, *extra: str) -> str:
    result = runner.invoke(app, ["analyze", str(video), "--sample-fps", "1", "--db", db_url,
                                 "--annotated-video", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result.stderr


def red_share(image: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """How much of the box's left edge is drawn in the unmasked colour."""
    x1, y1, x2, y2 = (int(v) for v in box)
    edge = image[y1 + 4 : y2 - 4, max(0, x1 - 1) : x1 + 2].reshape(-1, 3).astype(int)
    return float((np.abs(edge - RED).sum(axis=1) < 120).mean())


def test_annotated_video_shows_the_stored_boxes_and_blurs_faces_when_asked(
    runner: CliRunner, db_url: str, composition_video: Path, session_for, tmp_path: Path
) -> None:
    plain = tmp_path / "plain.mp4"
    stderr = analyze(runner, db_url, composition_video, plain)
    assert f"annotated video: {plain} (8 frames)" in stderr.replace("\n", "")
    info = probe(plain)
    assert (info.kind, info.codec, info.width, info.height) == ("video", "h264", 640, 360)
    frames = list(iter_frames(info, sample_fps=None))
    assert len(frames) == 8  # one per analysed frame, at the analysis's 1 frame per second

    with session_for() as session:
        unmasked = session.scalars(
            select(FaceDetection).where(FaceDetection.frame_index == 20,
                                        FaceDetection.label == "without_mask")
        ).all()
    assert len(unmasked) == 2  # seconds 2-3 show two unmasked faces
    boxes = [(d.x1, d.y1, d.x2, d.y2) for d in unmasked]
    second_frame_at_2s = frames[2].image
    assert all(red_share(second_frame_at_2s, box) > 0.6 for box in boxes)
    # Each tracked face carries its person's number on a tag (unmasked red) under its box.
    assert all(d.track_id is not None for d in unmasked)
    for x1, _, _, y2 in boxes:
        tag = second_frame_at_2s[int(y2) + 4 : int(y2) + 10, int(x1) + 1 : int(x1) + 8]
        # white digits on red, smeared by H.264's halved chroma: far redder than grey or skin
        assert tag[..., 0].astype(float).mean() - tag[..., 1].astype(float).mean() > 70

    blurred_out = tmp_path / "blurred.mp4"
    analyze(runner, db_url, composition_video, blurred_out, "--blur-faces")
    blurred = list(iter_frames(probe(blurred_out), sample_fps=None))[2].image

    def detail(image: np.ndarray, box: tuple[float, float, float, float]) -> float:
        x1, y1, x2, y2 = (int(v) for v in box)
        inner = image[y1 + 8 : y2 - 8, x1 + 8 : x2 - 8].astype(float)
        return float(np.abs(np.diff(inner, axis=1)).mean())

    for box in boxes:
        assert red_share(blurred, box) > 0.6  # boxes and labels kept
        assert detail(blurred, box) < 0.5 * detail(second_frame_at_2s, box)


def test_annotated_video_takes_one_input(
    runner: CliRunner, db_url: str, composition_video: Path, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["analyze", str(composition_video), str(composition_video),
                                 "--db", db_url, "--annotated-video", str(tmp_path / "o.mp4")])
    assert result.exit_code == 2
    assert "--annotated-video takes one input, not 2" in result.output
