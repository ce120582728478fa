"""The detector's rule batch gives the events of every rule stepped alone, in the same order.

Random data in changing modes (in limits, spikes past them, stuck, BAD, silent, late and
future-dated samples), with operator requests between steps, through a detector and
through the same rules each stepped on its own.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import TypeAdapter

from edge_agent.detect.config import DetectConfig, RuleConfig
from edge_agent.detect.detector import Detector
from edge_agent.detect.requests import Request
from edge_agent.detect.rules import Rule
from edge_agent.twin.windows import Windows
from edge_agent.types import Alert, Quality, Sample

T0 = 1_800_000_000.0
SIGNALS = ["p.a", "p.b", "p.c"]
RULES: list[dict[str, Any]] = [
    {"type": "threshold", "signal": "p.a", "above": 1.5, "max_age": "5s"},
    {"type": "threshold", "signal": "p.a", "below": -1.5, "hysteresis": 0.5, "for": "3s"},
    {"type": "threshold", "signal": "p.b", "above": 1.0, "below": -1.0, "clear_for": "2s"},
    {"type": "threshold", "signal": "p.c", "above": 1.0, "run_state": "p.b > -0.5"},
    {"type": "bad_quality", "signal": "p.b", "for": "2s", "max_age": "4s"},
    {"type": "bad_quality", "signal": "p.c", "asset": "line"},
    {"type": "flatline", "signal": "p.c", "for": "5s", "tolerance": 0.01},
    {"type": "rate", "signal": "p.b", "max_change": 2.0, "over": "3s"},
]
MODES = ["ok", "ok", "high", "low", "flat", "bad", "gap", "late", "future"]


def _configs() -> list[Any]:
    adapter: TypeAdapter[Any] = TypeAdapter(RuleConfig)
    return [adapter.validate_python({"name": f"r{i}", **r}) for i, r in enumerate(RULES)]


def _samples(rng: random.Random, t: int, modes: dict[str, str]) -> list[Sample]:
    out = []
    for signal in SIGNALS:
        mode = modes[signal]
        ts = T0 + t + rng.choice([0.0, 0.1, 0.7])
        if mode == "gap":
            continue
        if mode == "late" and rng.random() < 0.4:
            ts -= rng.choice([0.5, 3.0, 40.0])
        if mode == "future" and rng.random() < 0.4:
            ts += rng.choice([1.5, 20.0])
        if mode == "bad" and rng.random() < 0.7:
            out.append(Sample.bad(signal, ts))
            continue
        value = {"high": 2.0, "low": -2.0, "flat": 0.5}.get(mode, rng.gauss(0.0, 0.6))
        out.append(Sample(signal, ts, value, Quality.GOOD))
    return out


def _request(rng: random.Random, open_alerts: list[Alert], now: float) -> Request | None:
    if not open_alerts or rng.random() > 0.1:
        return None
    alert = rng.choice(open_alerts)
    action = rng.choice(["ack", "shelve", "unshelve"])
    return Request(0, now, action, alert.id, until=now + rng.choice([3.0, 30.0]), by="op")


def _apply_alone(rules: list[Rule], request: Request, now: float) -> Alert | None:
    """What Detector.apply does, on the rule whose open alert the request names."""
    named = [r.tracker for r in rules if r.tracker.open and r.tracker.open.id == request.alert]
    tracker = named[0]
    if request.action == "ack":
        return tracker.acknowledge(now, "op")
    if request.action == "shelve":
        return tracker.shelve(now, request.until, "op")
    return tracker.unshelve(now, "unshelved by op")


@pytest.mark.parametrize("seed", range(6))
def test_batch_gives_the_events_of_each_rule_alone(seed: int) -> None:
    rng = random.Random(seed)
    detector = Detector(DetectConfig(), [], [Rule(c) for c in _configs()])
    alone = [Rule(c) for c in _configs()]
    windows = Windows(rng.choice([16, 64]))
    modes = dict.fromkeys(SIGNALS, "ok")
    events = skipped_steps = 0
    raised: dict[str, Alert] = {}
    for t in range(500):
        if rng.random() < 0.06:
            modes[rng.choice(SIGNALS)] = rng.choice(MODES)
        windows.append(_samples(rng, t, modes))
        now = T0 + t + rng.choice([0.0, 0.5])
        request = _request(rng, detector.open_alerts(), now)
        if request is not None:
            expected_update = _apply_alone(alone, request, now)
            assert detector.apply(request, now)[0] == expected_update
        got = detector.step(windows, now)
        expected = [e for e in (r.step(windows, now) for r in alone) if e is not None]
        assert got == expected, t
        events += len(got)
        skipped_steps += sum(detector._batch._settled)  # the skip really runs
        raised.update((e.cause, e) for e in got if e.state == "raised")
        if t == 250:  # as at a restart: alerts left open come back; the batch must see them
            back = list(raised.values())
            assert back and detector.restore(back, now) == []
            for rule in alone:
                for alert in back:
                    if alert.cause == rule.config.name:
                        rule.tracker.restore(alert)
    assert events > 20 and skipped_steps > 500
