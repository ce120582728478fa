"""Calibration: aligned history, normalisation and threshold, versions and rollback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.detect import calibrate
from edge_agent.detect.card import ModelCard
from edge_agent.detect.config import AssetConfig, DetectConfig
from edge_agent.detect.detector import Detector
from edge_agent.detect.model import load_model, sliding_windows
from edge_agent.errors import ModelError
from edge_agent.twin.windows import Windows
from tests.detect.tiny import SIGNALS, card, rows, square_model

T0 = 1_800_000_000.0


def normal_history(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(n, dtype=np.float64)
    values = np.column_stack([rng.normal(10, 2, n), rng.normal(50, 5, n), rng.normal(1, 0.5, n)])
    return ts, values


def test_segments_split_at_gaps_and_bad_values() -> None:
    ts = T0 + np.array([0, 1, 2, 3, 4, 10, 11, 12, 13], dtype=np.float64)
    a = np.arange(9, dtype=np.float64)
    b = a.copy()
    b[7] = np.nan  # a BAD sample at T0+12
    segments = calibrate.history_segments([(ts, a), (ts, b)], 1.0, 1.0)
    # T0..T0+5 (the 5 s is held 1 s), then gap, then T0+10..11, BAD at 12, then 13.
    assert [len(s) for s in segments] == [6, 2, 1]
    assert not any(np.isnan(s).any() for s in segments)


def test_rows_in_alarm_are_left_out() -> None:
    ts = T0 + np.arange(20, dtype=np.float64)
    values = np.ones(20)
    alarm = (T0 + np.array([5.0, 9.0]), np.array([1.0, 0.0]))  # raised at 5, cleared at 9
    segments = calibrate.history_segments([(ts, values)], 1.0, 1.0, exclude=alarm)
    assert [len(s) for s in segments] == [5, 11]


def test_fit_card_learns_normalisation_and_threshold(tmp_path: Path) -> None:
    model = load_model(square_model(tmp_path / "tiny.onnx"))
    ts, values = normal_history(2000)
    series = [(ts, values[:, i]) for i in range(3)]
    fitted = calibrate.fit_card(model, calibrate.history_segments(series, 1.0, 3.0))
    np.testing.assert_allclose(fitted.mean, values.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(fitted.std, values.std(axis=0), rtol=1e-9)
    # Recompute the threshold independently: quantile 0.99 of window scores x 1.5.
    z = (values - values.mean(axis=0)) / values.std(axis=0)
    scores = (sliding_windows(z, 4) ** 2).mean(axis=(1, 2))
    assert fitted.threshold == pytest.approx(np.quantile(scores, 0.99) * 1.5, rel=1e-4)
    assert fitted.info["calibrated_rows"] == 2000


def test_too_little_history_is_a_clear_error(tmp_path: Path) -> None:
    model = load_model(square_model(tmp_path / "tiny.onnx"))
    ts, values = normal_history(5)
    with pytest.raises(ModelError, match="at least 7 consecutive complete rows"):
        calibrate.fit_card(
            model, calibrate.history_segments([(ts, values[:, i]) for i in range(3)], 1.0, 3.0)
        )


def test_versions_rollback_and_hot_swap(tmp_path: Path) -> None:
    path = square_model(tmp_path / "tiny.onnx")
    asset = AssetConfig(name="pump", model="tiny.onnx", signals=list(SIGNALS))
    det = Detector.load(DetectConfig(assets=[asset]), lambda p: tmp_path / p)
    det.assets["pump"].slot.check_every = 0.0  # files looked at every step, not once a second
    shipped = det.assets["pump"].slot.card
    card2, saved = calibrate.save(path, shipped, shipped.replace(threshold=5.0))
    assert (card2.version, saved.name) == (2, "tiny.card.v2.json")
    assert sorted(calibrate.versions(path)) == [1, 2]  # the shipped card is kept as v1
    assert ModelCard.from_json((tmp_path / "tiny.card.json").read_text()) == card2
    windows = Windows(100)
    windows.append(rows(T0, [0.0, 0.0, 0.0]))
    det.step(windows, T0)
    assert det.assets["pump"].threshold == 5.0  # picked up at the next step
    back = calibrate.rollback(path, card2)
    assert back == shipped
    det.step(windows, T0 + 1)
    assert det.assets["pump"].threshold == 1.0
    card3, _ = calibrate.save(path, back, back.replace(threshold=2.0))
    assert card3.version == 3 and sorted(calibrate.versions(path)) == [1, 2, 3]
    with pytest.raises(ModelError, match="no card version older than v1"):
        calibrate.rollback(path, shipped)


def test_calibrated_card_is_used_in_memory(tmp_path: Path) -> None:
    square_model(tmp_path / "tiny.onnx", card(mean=(0.0, 0.0, 0.0)))
    asset = AssetConfig.model_validate(
        {"name": "pump", "model": "tiny.onnx", "signals": list(SIGNALS), "settle": "0s"}
    )
    det = Detector.load(DetectConfig(assets=[asset]), lambda p: tmp_path / p)
    slot = det.assets["pump"].slot
    ts, values = normal_history(200)
    segments = calibrate.history_segments([(ts, values[:, i]) for i in range(3)], 1.0, 3.0)
    slot.use_card(calibrate.fit_card(slot.model, segments))
    windows = Windows(100)
    for i in range(4):
        windows.append(rows(T0 + i, [10.0, 50.0, 1.0]))  # the machine's normal values
        det.step(windows, T0 + i)
    scored = det.scores()["pump"]
    assert scored is not None and scored.score < 0.05 < scored.threshold
