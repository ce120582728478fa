"""Rules with durations and hysteresis: threshold, rate of change, flatline, bad quality."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from edge_agent.detect.config import DetectConfig, RuleConfig
from edge_agent.detect.detector import Detector
from edge_agent.detect.rules import Rule
from edge_agent.twin.windows import Windows
from edge_agent.types import Alert, AlertKind, AlertState, Sample, Severity
from tests.detect.tiny import good

T0 = 1_800_000_000.0
SIG = "press1.temp"


def rule(**fields: Any) -> Rule:
    return Rule(TypeAdapter(RuleConfig).validate_python({"name": "r", "signal": SIG, **fields}))


def feed(
    r: Rule, values: Sequence[float | None], t0: float = T0, windows: Windows | None = None
) -> list[tuple[float, Alert]]:
    """One sample and one step per second; None is a BAD sample."""
    windows = windows or Windows(10_000)
    events = []
    for i, value in enumerate(values):
        ts = t0 + i
        windows.append([Sample.bad(SIG, ts) if value is None else good(SIG, ts, value)])
        event = r.step(windows, ts)
        if event is not None:
            events.append((ts - t0, event))
    return events


def test_threshold_waits_for_its_duration() -> None:
    r = rule(type="threshold", above=90, **{"for": "10s"}, hysteresis=5, severity="critical")
    # 8 s above, a dip, then 12 s above: only the second run lasts 10 s.
    events = feed(r, [80.0] * 3 + [95.0] * 8 + [85.0] + [95.0] * 12)
    assert [(t, e.state) for t, e in events] == [(22.0, AlertState.RAISED)]
    alert = events[0][1]
    assert alert.kind is AlertKind.RULE and alert.cause == "r" and alert.asset == "press1"
    assert alert.severity is Severity.CRITICAL and alert.signals == (SIG,)
    assert "95 > 90 for 10s" in alert.reason


def test_threshold_hysteresis_holds_until_clearly_back() -> None:
    r = rule(type="threshold", above=90, hysteresis=5)
    # Raised at once; 86..90 is inside the band: no clear; 84 clears.
    events = feed(r, [95.0, 89.0, 86.0, 91.0, 88.0, 84.0, 95.0])
    assert [(t, e.state) for t, e in events] == [
        (0.0, AlertState.RAISED),
        (5.0, AlertState.CLEARED),
        (6.0, AlertState.RAISED),
    ]
    assert events[0][1].id == events[1][1].id != events[2][1].id


def test_threshold_below_limit() -> None:
    r = rule(type="threshold", below=2.0)
    events = feed(r, [3.0, 1.5, 2.5])
    assert [e.state for _, e in events] == [AlertState.RAISED, AlertState.CLEARED]
    assert "1.5 < 2" in events[0][1].reason


def test_bad_sample_restarts_a_duration() -> None:
    r = rule(type="threshold", above=90, **{"for": "5s"})
    assert feed(r, [95.0] * 4 + [None] + [95.0] * 4) == []
    r = rule(type="threshold", above=90, **{"for": "5s"})
    assert [t for t, _ in feed(r, [95.0] * 6)] == [5.0]


def test_rate_of_change() -> None:
    r = rule(type="rate", max_change=10, over="5s")
    ramp = [50.0] * 6 + [50.0 + 3 * i for i in range(1, 8)] + [71.0] * 8
    events = feed(r, ramp)
    assert [e.state for _, e in events] == [AlertState.RAISED, AlertState.CLEARED]
    assert events[0][0] == 9.0  # 50 -> 62 within 5 s: first change beyond 10
    assert "changed by +12" in events[0][1].reason


def test_flatline_detects_a_stuck_sensor() -> None:
    r = rule(type="flatline", **{"for": "10s"}, tolerance=0.01)
    moving = [20.0 + (i % 3) * 0.5 for i in range(12)]
    events = feed(r, moving + [21.0] * 15 + moving)
    assert [(t, e.state) for t, e in events] == [
        (21.0, AlertState.RAISED),  # 21.0 since t=11: 10 s later
        (27.0, AlertState.CLEARED),
    ]
    assert "stuck at 21" in events[0][1].reason


def test_flatline_needs_for() -> None:
    with pytest.raises(ValidationError, match="needs `for`"):
        rule(type="flatline")


def test_bad_quality_for_too_long() -> None:
    r = rule(type="bad_quality", **{"for": "5s"})
    events = feed(r, [1.0] * 3 + [None] * 4 + [1.0] + [None] * 7 + [1.0])
    assert [(t, e.state) for t, e in events] == [
        (13.0, AlertState.RAISED),
        (15.0, AlertState.CLEARED),
    ]
    assert "BAD quality for 5s" in events[0][1].reason


def test_silence_counts_as_bad_after_max_age() -> None:
    r = rule(type="bad_quality", max_age="3s")
    windows = Windows(100)
    windows.append([good(SIG, T0, 1.0)])
    assert r.step(windows, T0 + 3) is None
    event = r.step(windows, T0 + 4)
    assert event is not None and "no sample for 3s" in event.reason


def test_threshold_rule_is_unknown_when_data_is_old() -> None:
    r = rule(type="threshold", above=1, max_age="2s")
    windows = Windows(100)
    windows.append([good(SIG, T0, 5.0)])
    assert r.step(windows, T0 + 5) is None  # 5 s old: no evidence either way


def test_rules_in_the_detector_and_health(tmp_path: object) -> None:
    config = DetectConfig.model_validate(
        {
            "rules": [
                {
                    "name": "hot",
                    "type": "threshold",
                    "signal": SIG,
                    "above": 90,
                    "severity": "critical",
                },
                {
                    "name": "bad",
                    "type": "bad_quality",
                    "signal": SIG,
                    "asset": "press",
                    "for": "1m",
                },
            ]
        }
    )
    det = Detector.load(config, lambda p: tmp_path / p)  # type: ignore[operator]
    windows = Windows(100)
    windows.append([good(SIG, T0, 95.0)])
    alerts = det.step(windows, T0)
    assert [(a.asset, a.cause, a.state) for a in alerts] == [("press1", "hot", AlertState.RAISED)]
    assert det.health() == {"press1": 20.0, "press": 100.0}
    recorded = {s.signal: s.value for s in det.samples()}
    assert recorded == {"detect.press1.health": 20.0, "detect.press.health": 100.0}
    assert {i.signal for i in det.signal_infos()} == set(recorded)
    det.step(windows, T0 + 1)
    assert det.samples() == []  # health unchanged: nothing new to record
    assert det.signals() == {SIG}
    assert det.window_seconds() >= 60.0


def test_rule_names_unique_per_asset() -> None:
    rules = [{"name": "hot", "type": "threshold", "signal": SIG, "above": 1}] * 2
    with pytest.raises(ValidationError, match=r"used twice for one asset: \['press1/hot'\]"):
        DetectConfig.model_validate({"rules": rules})
    model_named = [{"name": "model", "type": "bad_quality", "signal": SIG}]
    asset = {"name": "press1", "model": "m.onnx", "signals": [SIG]}
    with pytest.raises(ValidationError, match="press1/model"):
        DetectConfig.model_validate({"rules": model_named, "assets": [asset]})


def test_repeated_causes_among_10000_rules_are_each_named_once_sorted() -> None:
    rules = [
        {"name": f"r{i}", "type": "threshold", "signal": SIG, "above": 1} for i in range(10_000)
    ]
    rules += [{"name": "r9", "type": "threshold", "signal": SIG, "above": 2}] * 2
    rules += [{"name": "r10", "type": "threshold", "signal": SIG, "above": 3}]
    with pytest.raises(ValidationError, match=r"\['press1/r10', 'press1/r9'\]"):
        DetectConfig.model_validate({"rules": rules})


def test_asset_names_used_twice_are_named_once_sorted() -> None:
    assets = [{"name": f"a{i}", "model": "m.onnx", "signals": [SIG]} for i in range(500)]
    assets += [assets[7], assets[3], assets[7]]
    with pytest.raises(ValidationError, match=r"asset name\(s\) used twice: \['a3', 'a7'\]"):
        DetectConfig.model_validate({"assets": assets})


def test_threshold_needs_a_limit() -> None:
    with pytest.raises(ValidationError, match="needs `above`"):
        rule(type="threshold")
