"""Monochrome frames (night and infrared cameras) get their own detector thresholds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from maskwatch.core.analysis import AnalysisSettings, DetectorConfig
from maskwatch.runtime import analysis_settings
from maskwatch.settings import Settings
from ml.footage import render_composition
from worker.pipeline.detect import build_detector, is_monochrome

pytestmark = pytest.mark.slow  # real models over images or video

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def colour() -> np.ndarray:
    return np.asarray(render_composition(2, 1).convert("RGB"))


def grey(frame: np.ndarray) -> np.ndarray:
    luma = frame @ np.array([0.299, 0.587, 0.114])
    return np.repeat(luma.round().astype(np.uint8)[..., None], 3, axis=2)


def test_is_monochrome(colour: np.ndarray) -> None:
    assert not is_monochrome(colour)
    mono = grey(colour)
    assert is_monochrome(mono)
    # decoded grey video: chroma rounding of a unit or two per channel
    noisy = np.clip(mono.astype(np.int16) + np.random.default_rng(0).integers(-1, 2, mono.shape),
                    0, 255).astype(np.uint8)
    assert is_monochrome(noisy)
    # a coloured timestamp overlay (1 % of the frame) does not make a night frame colour...
    stamped = mono.copy()
    stamped[:18, :64] = (255, 220, 0)
    assert is_monochrome(stamped)
    # ...but a coloured tenth of the frame is a colour picture
    tinted = mono.copy()
    tinted[:, : mono.shape[1] // 10] = (200, 40, 40)
    assert not is_monochrome(tinted)
    assert not is_monochrome(np.zeros((0, 0, 3), np.uint8))


def test_thresholds_for() -> None:
    config = DetectorConfig(thresholds=(0.6, 0.8, 0.8), face_threshold=0.9,
                            mono_thresholds=(0.5, 0.6, 0.6), mono_face_threshold=0.7)
    assert config.thresholds_for(False) == ((0.6, 0.8, 0.8), 0.9)
    assert config.thresholds_for(True) == ((0.5, 0.6, 0.6), 0.7)
    same = replace(config, mono_thresholds=None, mono_face_threshold=None)
    assert same.thresholds_for(True) == ((0.6, 0.8, 0.8), 0.9)


@pytest.mark.parametrize("weights", ["mtcnn_finetuned.pt", "mtcnn_finetuned.pt+mtcnn_union.pt"])
def test_a_monochrome_frame_is_detected_with_its_own_thresholds(
    colour: np.ndarray, weights: str
) -> None:
    base = DetectorConfig(detector_weights=weights, mono_thresholds=None, mono_face_threshold=None)
    # a face threshold no face can pass, for monochrome frames only
    strict = replace(base, mono_face_threshold=1.01)
    mono = grey(colour)
    assert len(build_detector(base, CPU).detect([mono])[0]) == 3
    detector = build_detector(strict, CPU)
    assert len(detector.detect([mono])[0]) == 0
    assert len(detector.detect([colour])[0]) == 3


@pytest.mark.parametrize("cascade", [True, False], ids=["own cascade (CPU)", "facenet (GPU path)"])
@pytest.mark.parametrize("weights", ["mtcnn_finetuned.pt", "mtcnn_finetuned.pt+mtcnn_union.pt"])
def test_monochrome_stage_thresholds_apply_per_frame_on_both_paths(
    colour: np.ndarray, weights: str, cascade: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.pipeline.detect import MTCNNDetector

    if not cascade:  # facenet-pytorch's own MTCNN.detect, as on CUDA
        monkeypatch.setattr(MTCNNDetector, "uses_cascade", property(lambda self: False))
    # stage thresholds no face passes, face threshold as for colour: only the stages can stop it
    config = DetectorConfig(detector_weights=weights, mono_thresholds=(0.9999999,) * 3,
                            mono_face_threshold=None)
    detector = build_detector(config, CPU)
    mono = grey(colour)
    assert [len(d) for d in detector.detect([mono, colour, mono, colour])] == [0, 3, 0, 3]


def test_settings_reach_each_job_and_null_turns_them_off(monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = analysis_settings(Settings())
    assert shipped.detector_config().thresholds_for(True) == ((0.5, 0.6, 0.6), 0.7)
    stored = shipped.to_dict()
    assert stored["mono_thresholds"] == [0.5, 0.6, 0.6]
    assert AnalysisSettings.from_dict(stored) == shipped

    monkeypatch.setenv("MASKWATCH_MONO_DETECTOR_THRESHOLDS", "null")
    monkeypatch.setenv("MASKWATCH_MONO_FACE_THRESHOLD", "null")
    off = analysis_settings(Settings())
    assert (off.mono_thresholds, off.mono_face_threshold) == (None, None)
    assert off.detector_config().thresholds_for(True) == ((0.6, 0.8, 0.8), 0.9)
    # jobs stored before the setting existed keep the colour thresholds for grey frames
    legacy = AnalysisSettings.from_dict({"sample_fps": 5.0})
    assert (legacy.mono_thresholds, legacy.mono_face_threshold) == (None, None)

    monkeypatch.setenv("MASKWATCH_MONO_DETECTOR_THRESHOLDS", "[0.5,0.6,1.5]")
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        Settings()
