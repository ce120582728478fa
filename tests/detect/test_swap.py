"""Model hot swap: a changed model file is validated first, then swapped between two steps.

The slots look at their files at most once per ``CHECK_EVERY`` (1 s) of their clock; here
that clock follows the steps, one second apart, as a detector stepping every second sees it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from edge_agent.detect.config import AssetConfig, DetectConfig
from edge_agent.detect.detector import Detector
from edge_agent.twin.windows import Windows
from tests.detect.tiny import SIGNALS, card, rows, square_model

T0 = 1_800_000_000.0


def load(tmp_path: Path) -> Detector:
    square_model(tmp_path / "tiny.onnx")
    asset = AssetConfig.model_validate(
        {"name": "pump", "model": "tiny.onnx", "signals": list(SIGNALS), "settle": "0s"}
    )
    return Detector.load(DetectConfig(assets=[asset]), lambda p: tmp_path / p)


def publish(tmp_path: Path, data: bytes, bump: int) -> None:
    """Write beside, rename over: how a model update should land; new mtime each time."""
    tmp = tmp_path / "tiny.onnx.new"
    tmp.write_bytes(data)
    stamp = int(T0) * 10**9 + bump
    os.utime(tmp, ns=(stamp, stamp))
    tmp.replace(tmp_path / "tiny.onnx")


def step(det: Detector, windows: Windows, t: float) -> None:
    windows.append(rows(T0 + t, [1.0, 1.0, 1.0]))
    for asset in det.assets.values():
        asset.slot.clock = lambda: t  # seconds, as time.monotonic gives them
    det.step(windows, T0 + t)


def test_files_are_looked_at_once_per_check_interval(tmp_path: Path) -> None:
    det, windows = load(tmp_path), Windows(100)
    step(det, windows, 0)
    publish(tmp_path, square_model(tmp_path / "v2.onnx", card(threshold=7.0)).read_bytes(), 1)
    step(det, windows, 0.5)  # half a second after the last look: not looked at yet
    assert det.assets["pump"].threshold == 1.0
    step(det, windows, 1.0)
    assert det.assets["pump"].threshold == 7.0


def test_valid_new_model_is_swapped_in(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    det, windows = load(tmp_path), Windows(100)
    for t in range(5):
        step(det, windows, t)
    assert det.assets["pump"].threshold == 1.0
    newer = square_model(tmp_path / "v2.onnx", card(threshold=7.0, version=2))
    publish(tmp_path, newer.read_bytes(), 1)
    with caplog.at_level(logging.INFO):
        step(det, windows, 5)
    assert det.assets["pump"].threshold == 7.0
    assert "model swapped (tiny v1 -> tiny v2)" in caplog.text
    scored = det.scores()["pump"]
    assert scored is not None and scored.threshold == 7.0  # that very step used the new card


def test_corrupt_update_is_refused_once_and_the_old_model_runs_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    det, windows = load(tmp_path), Windows(100)
    step(det, windows, 0)
    publish(tmp_path, b"not an onnx model", 1)
    with caplog.at_level(logging.ERROR):
        for t in range(1, 6):
            step(det, windows, t)
    assert caplog.text.count("new model refused") == 1
    scored = det.scores()["pump"]
    assert scored is not None and scored.ts == T0 + 5  # still scoring with the old model
    # A fixed file is picked up at the next step.
    publish(tmp_path, square_model(tmp_path / "ok.onnx", card(threshold=3.0)).read_bytes(), 2)
    step(det, windows, 6)
    assert det.assets["pump"].threshold == 3.0


def test_update_missing_a_signal_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    det, windows = load(tmp_path), Windows(100)
    other = card(signals=("pump.current", "pump.temp", "pump.flow"), threshold=9.0)
    publish(tmp_path, square_model(tmp_path / "other.onnx", other).read_bytes(), 1)
    with caplog.at_level(logging.ERROR):
        step(det, windows, 0)
    assert "pump.flow" in caplog.text and det.assets["pump"].threshold == 1.0


def test_reload_off_ignores_changes(tmp_path: Path) -> None:
    square_model(tmp_path / "tiny.onnx")
    asset = AssetConfig(name="pump", model="tiny.onnx", signals=list(SIGNALS), reload="off")
    det, windows = Detector.load(DetectConfig(assets=[asset]), lambda p: tmp_path / p), Windows(9)
    publish(tmp_path, square_model(tmp_path / "v2.onnx", card(threshold=7.0)).read_bytes(), 1)
    step(det, windows, 0)
    assert det.assets["pump"].threshold == 1.0


def test_a_swapped_model_keeps_the_configured_engine(tmp_path: Path) -> None:
    square_model(tmp_path / "tiny.onnx")
    asset = AssetConfig.model_validate(
        {
            "name": "pump",
            "model": "tiny.onnx",
            "signals": list(SIGNALS),
            "settle": "0s",
            "engine": "onnxruntime",
        }
    )
    det, windows = Detector.load(DetectConfig(assets=[asset]), lambda p: tmp_path / p), Windows(100)
    assert det.assets["pump"].slot.model.backend == "onnxruntime"
    step(det, windows, 0)
    publish(tmp_path, square_model(tmp_path / "v2.onnx", card(version=2)).read_bytes(), 1)
    step(det, windows, 1)
    assert det.assets["pump"].slot.card.version == 2
    assert det.assets["pump"].slot.model.backend == "onnxruntime"
    assert load(tmp_path).assets["pump"].slot.model.backend == "numpy"  # the default: auto


def two_on_one_file(tmp_path: Path) -> Detector:
    """Assets ``pump`` and ``press`` whose ``model:`` names the same file."""
    square_model(tmp_path / "tiny.onnx")
    press = [s.replace("pump.", "press.") for s in SIGNALS]
    assets = [
        AssetConfig.model_validate(
            {"name": name, "model": "tiny.onnx", "signals": signals, "settle": "0s"}
        )
        for name, signals in (("pump", list(SIGNALS)), ("press", press))
    ]
    return Detector.load(DetectConfig(assets=assets), lambda p: tmp_path / p)


def test_assets_naming_one_file_share_its_model_and_keep_their_own_signals(
    tmp_path: Path,
) -> None:
    det = two_on_one_file(tmp_path)
    pump, press = det.assets["pump"].slot, det.assets["press"].slot
    assert pump.model is press.model  # loaded and probed once
    assert pump.signals == list(SIGNALS)
    assert press.signals == ["press.current", "press.temp", "press.vib"]


def test_a_shared_model_is_swapped_per_asset(tmp_path: Path) -> None:
    det = two_on_one_file(tmp_path)
    shared = det.assets["press"].slot.model
    det.assets["pump"].slot.use_card(card(threshold=7.0))  # a calibration of one asset
    assert det.assets["pump"].threshold == 7.0
    assert det.assets["press"].slot.model is shared and det.assets["press"].threshold == 1.0
    publish(tmp_path, square_model(tmp_path / "v2.onnx", card(threshold=5.0)).read_bytes(), 1)
    for asset in det.assets.values():
        asset.slot.clock = lambda: 10.0
    assert det.assets["press"].slot.refresh()
    assert det.assets["press"].threshold == 5.0
    assert det.assets["pump"].threshold == 7.0  # its own model, untouched by the other's swap
