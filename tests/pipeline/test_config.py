"""How much small frames are enlarged before detection, and which inputs are too small."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from maskwatch.core.analysis import AnalysisSettings, DetectorConfig
from worker.pipeline.config import check_analysable
from worker.pipeline.decode import MediaInfo, probe
from worker.pipeline.errors import InputError


@pytest.mark.parametrize(
    ("upscale", "min_detect_side", "size", "expected"),
    [
        (1.0, 600, (400, 300), 1.5),  # kaggle-sized scene: enlarged to 600 px
        (1.0, 600, (200, 100), 2.0),  # capped at 2x
        (1.0, 600, (1280, 720), 1.0),  # CCTV frame: left alone
        (1.0, 600, (640, 360), 1.0),
        (1.0, 0, (400, 300), 1.0),  # auto enlargement switched off
        (3.0, 600, (400, 300), 3.0),  # an explicit factor wins
        (0.5, 0, (1920, 1080), 0.5),  # explicit shrinking is allowed
    ],
)
def test_scale_for(upscale, min_detect_side, size, expected) -> None:
    config = DetectorConfig(upscale=upscale, min_detect_side=min_detect_side)
    assert config.scale_for(*size) == pytest.approx(expected)


def test_settings_round_trip_through_the_job_row() -> None:
    settings = AnalysisSettings(sample_fps=2.0, detector_thresholds=(0.5, 0.6, 0.6))
    assert AnalysisSettings.from_dict(settings.to_dict()) == settings
    # Settings stored by an older release (fewer keys) still load, with today's defaults...
    assert AnalysisSettings.from_dict({"sample_fps": 3.0}).sample_fps == 3.0
    # ...except where such jobs ran otherwise: they were classified without mirroring, and
    # a job part-way through an upgrade keeps reading its faces the way it started.
    assert AnalysisSettings().mirror_faces is True
    assert AnalysisSettings.from_dict({"sample_fps": 3.0}).mirror_faces is False
    for mirror in (True, False):
        stored = AnalysisSettings(mirror_faces=mirror).to_dict()
        assert AnalysisSettings.from_dict(stored).mirror_faces is mirror


def image(folder: Path, width: int, height: int) -> MediaInfo:
    """A real grey PNG of that size, probed as an upload is."""
    path = folder / "cam.png"
    Image.new("RGB", (width, height), (128, 128, 128)).save(path)
    return probe(path)


@pytest.mark.parametrize(
    ("width", "height", "ok"), [(12, 12, False), (19, 400, False), (20, 20, True), (640, 360, True)]
)
def test_check_analysable(tmp_path: Path, width: int, height: int, ok: bool) -> None:
    settings = AnalysisSettings(min_face_size=20)
    if ok:
        check_analysable(image(tmp_path, width, height), settings)
    else:
        with pytest.raises(InputError, match=r"^cam\.png: .* too small"):
            check_analysable(image(tmp_path, width, height), settings)


@pytest.mark.parametrize(
    ("setting", "gpus", "index", "expected"),
    [
        ("auto", 0, 3, "auto"),  # no GPU: resolve_device picks the CPU
        ("auto", 2, 0, "cuda:0"),
        ("auto", 2, 1, "cuda:1"),
        ("auto", 2, 2, "cuda:0"),  # more processes than GPUs: they share round-robin
        ("cpu", 4, 1, "cpu"),  # an explicit device is kept
        ("cuda:1", 4, 0, "cuda:1"),
    ],
)
def test_device_for_worker_process(setting: str, gpus: int, index: int, expected: str) -> None:
    from worker.pipeline.device import device_for_process

    assert device_for_process(setting, gpus, index) == expected
