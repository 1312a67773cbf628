"""VOC parsing, split files and the scene list."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.data.scenes import load_scenes, parse_voc, read_split, tail_split

FIXTURES = Path(__file__).parent / "fixtures"
ANNOTATIONS, IMAGES = FIXTURES / "annotations", FIXTURES / "images"


def test_parse_voc_maps_classes_and_flags() -> None:
    scene = parse_voc(ANNOTATIONS / "blank_grey.xml", IMAGES)
    assert scene.scene_id == "blank_grey"
    assert scene.image_path == IMAGES / "blank_grey.png"
    assert scene.size_wh == (120, 96)
    assert scene.labels == ("with_mask", "incorrect_mask")  # mask_weared_incorrect renamed
    assert scene.difficult.tolist() == [False, True]
    assert scene.xyxy.tolist() == [[10, 20, 50, 70], [70, 30, 90, 52]]


def test_parse_voc_rejects_unknown_class(tmp_path: Path) -> None:
    xml = tmp_path / "x.xml"
    xml.write_text(
        "<annotation><filename>x.jpg</filename><object><name>hat</name></object></annotation>"
    )
    with pytest.raises(ValueError, match="unknown class 'hat'"):
        parse_voc(xml, IMAGES)


def test_read_split_accepts_names_stems_and_comments(tmp_path: Path) -> None:
    split = tmp_path / "val.txt"
    split.write_text("# validation scenes\nmaksssksksss523.jpg\n\n blank_grey  # synthetic\n")
    assert read_split(split) == ["maksssksksss523", "blank_grey"]


@pytest.mark.parametrize(
    ("count", "expected"),
    [(10, ["s08", "s09"]), (3, ["s02"]), (2, []), (0, [])],
)
def test_tail_split(count: int, expected: list[str]) -> None:
    ids = [f"s{i:02d}" for i in reversed(range(count))]
    assert tail_split(ids, 0.2) == expected


def test_load_scenes_sorted_split_and_limit() -> None:
    assert [s.scene_id for s in load_scenes(ANNOTATIONS, IMAGES)] == [
        "blank_grey",
        "maksssksksss125",
        "maksssksksss523",
    ]
    chosen = load_scenes(ANNOTATIONS, IMAGES, ["maksssksksss523", "blank_grey"], limit=1)
    assert [s.scene_id for s in chosen] == ["blank_grey"]
    with pytest.raises(FileNotFoundError, match="1 scene"):
        load_scenes(ANNOTATIONS, IMAGES, ["nope"])
