"""`maskwatch classify`: the stable per-face JSON and annotated output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from maskwatch.cli import app
from ml.footage import render_composition

pytestmark = pytest.mark.slow  # real models over images or video


def test_json_lines_give_boxes_labels_and_scores(runner: CliRunner, tmp_path: Path) -> None:
    scene = tmp_path / "scene.png"
    render_composition(2, 1).save(scene)

    result = runner.invoke(app, ["classify", str(scene), "--json"])

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0]["image"] == str(scene)
    faces = lines[0]["faces"]
    assert sorted(f["label"] for f in faces) == ["with_mask", "with_mask", "without_mask"]
    for face in faces:
        assert set(face) == {"box", "label", "score"}
        x1, y1, x2, y2 = face["box"]
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 360
        assert 60 <= y2 - y1 <= 200  # faces in 130-160 px tall tiles
        assert 0.5 < face["score"] <= 1.0
    # Faces are laid out left to right alternating masked / unmasked.
    by_x = sorted(faces, key=lambda f: f["box"][0])
    assert [f["label"] for f in by_x] == ["with_mask", "without_mask", "with_mask"]


def test_boxes_are_in_the_image_own_pixels_when_scaled(runner, tmp_path, monkeypatch) -> None:
    small, big = tmp_path / "small.png", tmp_path / "big.png"
    render_composition(1, 0).save(small)
    render_composition(1, 0).resize((1280, 720), Image.Resampling.LANCZOS).save(big)
    # The big image is analysed at 640 px (as the small one) and its boxes mapped back.
    monkeypatch.setenv("MASKWATCH_MAX_FRAME_SIDE", "640")
    from maskwatch.settings import get_settings

    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["classify", str(small), str(big), "--json"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    small_box, big_box = (
        json.loads(line)["faces"][0]["box"] for line in result.stdout.splitlines()
    )
    for s, b in zip(small_box, big_box, strict=True):
        assert abs(2 * s - b) <= 6


def test_annotate_writes_boxed_images_under_names_we_choose(runner, tmp_path) -> None:
    scene = tmp_path / "in put" / "x y;$(id).png"
    scene.parent.mkdir(parents=True, exist_ok=True)
    render_composition(1, 1).save(scene)
    out = tmp_path / "annotated"

    result = runner.invoke(app, ["classify", str(scene), "--annotate", str(out)])

    assert result.exit_code == 0, result.output
    written = list(out.iterdir())
    assert [p.name for p in written] == ["0000_x_y_id.jpg"]
    with Image.open(written[0]) as image:
        assert image.size == (640, 360)
        pixels = image.convert("RGB")
        colours = {pixels.getpixel((x, y)) for x in range(640) for y in range(0, 360, 2)}
    assert any(r < 60 and g > 150 and b < 60 for r, g, b in colours)  # green box: masked
    assert any(r > 180 and g < 60 and b < 60 for r, g, b in colours)  # red box: unmasked


def test_not_an_image_is_an_error_per_file(runner, tmp_path) -> None:
    good = tmp_path / "good.png"
    render_composition(0, 1).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")

    result = runner.invoke(app, ["classify", str(bad), str(good), "--json"])

    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert lines[0]["image"] == str(bad) and "bad.jpg" in lines[0]["error"]
    assert [f["label"] for f in lines[1]["faces"]] == ["without_mask"]


def test_a_photo_stored_sideways_with_exif_orientation_is_read_upright(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Phones store the sensor's pixels and an Orientation tag: 6 = turn 90 degrees clockwise."""
    upright, sideways = tmp_path / "upright.jpg", tmp_path / "sideways.jpg"
    scene = render_composition(2, 1)
    scene.save(upright, quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6
    scene.transpose(Image.Transpose.ROTATE_90).save(sideways, quality=95, exif=exif)

    result = runner.invoke(app, ["classify", str(upright), str(sideways), "--json"])

    assert result.exit_code == 0, result.output
    by_image = {
        Path(line["image"]).name: line["faces"]
        for line in map(json.loads, result.stdout.splitlines())
        if line
    }
    assert sorted(f["label"] for f in by_image["sideways.jpg"]) == [
        "with_mask", "with_mask", "without_mask"
    ]  # fmt: skip
    # The same faces in the same places: boxes are in the displayed (upright) frame.
    for a, b in zip(
        sorted(by_image["upright.jpg"], key=lambda f: f["box"][0]),
        sorted(by_image["sideways.jpg"], key=lambda f: f["box"][0]),
        strict=True,
    ):
        assert a["label"] == b["label"]
        assert all(abs(p - q) <= 8 for p, q in zip(a["box"], b["box"], strict=True))
        assert b["box"][2] <= 640 and b["box"][3] <= 360
