"""The Detector on a tiny model: scoring, alert lifecycle, gaps and BAD samples, health."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest

from edge_agent.detect.config import AssetConfig, DetectConfig
from edge_agent.detect.detector import Detector
from edge_agent.errors import ModelError
from edge_agent.twin.windows import Windows
from edge_agent.types import Alert, AlertKind, AlertState, Sample, Severity, alert_id
from tests.detect.tiny import SIGNALS, card, rows, square_model

T0 = 1_800_000_000.0


def detector(tmp_path: Path, **asset: object) -> Detector:
    square_model(tmp_path / "tiny.onnx")
    # settle 0: score each second at once; test_late_sample_is_waited_for covers settle.
    fields: dict[str, object] = {"name": "pump", "model": "tiny.onnx", "settle": "0s"}
    fields["signals"] = list(SIGNALS)
    fields.update(asset)
    config = DetectConfig(assets=[AssetConfig.model_validate(fields)])
    return Detector.load(config, lambda p: tmp_path / p)


def run(det: Detector, windows: Windows, levels: list[float], t0: float = T0) -> list[Alert]:
    """One step per second; at each second every signal reads ``level`` (score = level**2)."""
    alerts = []
    for i, level in enumerate(levels):
        windows.append(rows(t0 + i, [level] * 3))
        alerts += det.step(windows, t0 + i)
    return alerts


def test_raise_and_clear_share_a_stable_id(tmp_path: Path) -> None:
    det, windows = detector(tmp_path), Windows(1000)
    # 4 warm-up windows of zeros, then a fault (score 4), then back to normal.
    alerts = run(det, windows, [0.0] * 6 + [2.0] * 8 + [0.0] * 12)
    assert [a.state for a in alerts] == [AlertState.RAISED, AlertState.CLEARED]
    raised, cleared = alerts
    assert raised.id == cleared.id == alert_id("pump", "model", raised.window_end)
    assert raised.kind is AlertKind.MODEL and raised.asset == "pump"
    assert raised.severity is Severity.CRITICAL  # score 4 >= 2 x threshold 1
    assert raised.score >= raised.threshold == 1.0
    # k=3 of n=5: the third anomalous window raises, not the first.
    first_fault = T0 + 6
    assert raised.window_end > first_fault
    assert set(raised.signals) <= set(SIGNALS) and raised.signals
    assert raised.signals[0] in raised.reason
    assert raised.extra["model"] == "tiny" and raised.extra["model_version"] == 1
    assert list(raised.extra["shares"]) == list(raised.signals)
    assert cleared.score < 0.8 and cleared.window_end > raised.window_end


def test_noisy_scores_around_the_threshold_do_not_flap(tmp_path: Path) -> None:
    det, windows = detector(tmp_path), Windows(1000)
    # One window in three just above the threshold: never 3 of 5 -> no alert.
    levels = [0.0] * 4 + [1.05 if i % 3 == 0 else 0.95 for i in range(60)]
    assert run(det, windows, levels) == []
    # Once raised, scores wandering in the hysteresis band (0.8..1.0) and across
    # the threshold never clear it; only a run of clearly normal windows does.
    rng = np.random.default_rng(7)
    band = list(np.sqrt(rng.uniform(0.82, 1.3, size=80)))
    alerts = run(det, windows, [1.5] * 8 + band + [0.0] * 10, t0=T0 + 64)
    # (Raised as warning on the first windows of the fault, escalated once they are critical.)
    alerts = [a for a in alerts if a.state is not AlertState.SEVERITY]
    assert [a.state for a in alerts] == [AlertState.RAISED, AlertState.CLEARED]
    assert alerts[1].window_end >= T0 + 64 + 8 + 80


def test_bad_sample_skips_scoring_and_names_the_signal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    det, windows = detector(tmp_path), Windows(1000)
    run(det, windows, [0.0] * 5)
    scored = det.scores()["pump"]
    assert scored is not None and scored.ts == T0 + 4
    windows.append([*rows(T0 + 5, [3.0, 3.0], SIGNALS[:2]), Sample.bad("pump.vib", T0 + 5)])
    with caplog.at_level(logging.WARNING):
        assert det.step(windows, T0 + 5) == []
    assert det.scores()["pump"] == scored  # nothing new was scored
    assert "pump.vib" in det.assets["pump"].problem and "BAD" in det.assets["pump"].problem
    assert "pump.vib" in caplog.text
    # Four good seconds later the BAD sample has left the window: scoring resumes.
    run(det, windows, [0.0] * 4, t0=T0 + 6)
    assert det.assets["pump"].problem == ""
    last = det.scores()["pump"]
    assert last is not None and last.ts == T0 + 9


def test_nan_value_in_a_good_sample_is_not_fed_to_the_model(tmp_path: Path) -> None:
    det, windows = detector(tmp_path), Windows(1000)
    run(det, windows, [0.0] * 5)
    windows.append(rows(T0 + 5, [0.0, float("nan"), 0.0]))  # a decoded NaN register
    assert det.step(windows, T0 + 5) == []
    assert "pump.temp" in det.assets["pump"].problem
    last = det.scores()["pump"]
    assert last is not None and last.ts == T0 + 4


def test_gap_longer_than_fill_limit_is_not_scored(tmp_path: Path) -> None:
    det, windows = detector(tmp_path, fill_limit="2s"), Windows(1000)
    run(det, windows, [0.0] * 5)
    windows.append(rows(T0 + 5, [0.0, 0.0], SIGNALS[:2]))  # pump.vib silent from now on
    det.step(windows, T0 + 6)
    assert det.assets["pump"].problem == ""  # 2 s old: still held
    windows.append(rows(T0 + 7, [0.0, 0.0], SIGNALS[:2]))
    det.step(windows, T0 + 7)
    assert "pump.vib: no sample within 2s" in det.assets["pump"].problem


def test_signal_never_seen_is_reported(tmp_path: Path) -> None:
    det, windows = detector(tmp_path), Windows(1000)
    for i in range(6):
        windows.append(rows(T0 + i, [0.0, 0.0], SIGNALS[:2]))
        det.step(windows, T0 + i)
    assert det.assets["pump"].problem == "pump.vib: no recent samples"
    assert det.scores()["pump"] is None


def test_model_signal_missing_from_asset_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"pump\.vib"):
        detector(tmp_path, signals=["pump.current", "pump.temp", "pump.pressure"])


def test_signals_match_by_name_after_the_source_prefix(tmp_path: Path) -> None:
    square_model(tmp_path / "skab.onnx", card(signals=("Current", "Volume Flow RateRMS", "Temp")))
    asset = AssetConfig(
        name="pump",
        model="skab.onnx",
        signals=["skab.temp", "skab.current", "skab.volume_flow_raterms"],
    )
    det = Detector.load(DetectConfig(assets=[asset]), lambda p: tmp_path / p)
    assert det.assets["pump"].slot.signals == [
        "skab.current",
        "skab.volume_flow_raterms",
        "skab.temp",
    ]


def test_missing_model_file_is_a_model_error(tmp_path: Path) -> None:
    asset = AssetConfig(name="pump", model="nope.onnx", signals=list(SIGNALS))
    with pytest.raises(ModelError, match="not found"):
        Detector.load(DetectConfig(assets=[asset]), lambda p: tmp_path / p)


def test_card_normalisation_is_applied(tmp_path: Path) -> None:
    square_model(tmp_path / "tiny.onnx", card(mean=(10.0, 50.0, 1.0), std=(2.0, 5.0, 0.5)))
    asset = AssetConfig.model_validate(
        {"name": "pump", "model": "tiny.onnx", "signals": list(SIGNALS), "settle": "0s"}
    )
    det = Detector.load(DetectConfig(assets=[asset]), lambda p: tmp_path / p)
    windows = Windows(100)
    for i in range(4):
        windows.append(rows(T0 + i, [12.0, 50.0, 1.0]))  # current one std above its mean
        det.step(windows, T0 + i)
    scored = det.scores()["pump"]
    assert scored is not None
    assert scored.score == pytest.approx(1.0 / 3.0, rel=1e-5)


def test_health_follows_the_score_and_open_alerts(tmp_path: Path) -> None:
    det, windows = detector(tmp_path), Windows(1000)
    run(det, windows, [0.0] * 5)
    assert det.health() == {"pump": 100.0}
    run(det, windows, [np.sqrt(0.5)] * 5, t0=T0 + 5)
    assert det.health()["pump"] == pytest.approx(75.0, rel=1e-4)
    run(det, windows, [3.0] * 5, t0=T0 + 10)
    assert det.health()["pump"] == 0.0
    recorded = {s.signal: s.value for s in det.samples()}
    assert recorded["detect.pump.alarm"] == 1.0 and recorded["detect.pump.health"] == 0.0
    assert det.samples() == []


def test_shadow_mode_scores_and_records_but_sends_nothing(tmp_path: Path) -> None:
    det, windows = detector(tmp_path, mode="shadow"), Windows(1000)
    assert run(det, windows, [0.0] * 5 + [2.0] * 6) == []
    scored = det.scores()["pump"]
    assert scored is not None and scored.alarm and scored.score == pytest.approx(4.0)
    assert {s.signal for s in det.samples()} == {
        "detect.pump.score",
        "detect.pump.alarm",
        "detect.pump.health",
    }


def test_signals_and_window_seconds(tmp_path: Path) -> None:
    det = detector(tmp_path)
    assert det.signals() == set(SIGNALS)
    assert det.window_seconds() >= 4.0


def test_open_alert_survives_a_restart_and_clears_under_its_id(tmp_path: Path) -> None:
    det, windows = detector(tmp_path), Windows(1000)
    raised = run(det, windows, [0.0] * 4 + [2.0] * 6)
    assert [a.state for a in raised] == [AlertState.RAISED]
    again = detector(tmp_path)  # a new process: same config, fresh state
    assert again.restore(raised, T0 + 10) == []
    assert again.open_alerts() == raised
    cleared = run(again, windows, [0.0] * 12, t0=T0 + 10)
    assert [(a.state, a.id) for a in cleared] == [(AlertState.CLEARED, raised[0].id)]


def test_an_open_alert_of_a_cause_no_longer_configured_is_cleared_at_restore(
    tmp_path: Path,
) -> None:
    det, windows = detector(tmp_path), Windows(1000)
    raised = run(det, windows, [0.0] * 4 + [2.0] * 6)
    gone = dataclasses.replace(raised[0], asset="removed-pump")
    cleared = detector(tmp_path).restore([gone], T0 + 20)
    assert [(a.state, a.id, a.asset) for a in cleared] == [
        (AlertState.CLEARED, gone.id, "removed-pump")
    ]
    assert "no longer configured" in cleared[0].reason


def test_late_sample_is_waited_for(tmp_path: Path) -> None:
    """A sample polled at t but flushed to the windows after the step at t still counts."""
    det, windows = detector(tmp_path, settle="2s"), Windows(1000)
    for i in range(6):
        windows.append(rows(T0 + i, [0.0] * 3))
        det.step(windows, T0 + i + 0.5)
    last = det.scores()["pump"]
    assert last is not None and last.ts == T0 + 3  # 2 s behind
    det.step(windows, T0 + 6.5)  # the 6 s samples are not in yet
    windows.append(rows(T0 + 6, [1.0] * 3))  # the recorder flushes them late
    det.step(windows, T0 + 7.5)
    det.step(windows, T0 + 8.5)
    last = det.scores()["pump"]
    assert last is not None and last.ts == T0 + 6
    assert last.score == pytest.approx(0.25)  # the late 1.0 values were used
