"""Rules read the windows' fast paths and give what the plain series path gives."""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter

from edge_agent.detect.config import RuleConfig
from edge_agent.detect.lifecycle import Evidence
from edge_agent.detect.rules import Rule
from edge_agent.twin.windows import Windows
from edge_agent.types import Quality, Sample

T0 = 1_800_000_000.0
SIG = "press1.temp"
RULES: list[dict[str, Any]] = [
    {"type": "threshold", "above": 1.0, "for": "2s"},
    {"type": "threshold", "below": -1.0, "hysteresis": 0.2},
    {"type": "rate", "max_change": 1.5, "over": "3s"},
    {"type": "flatline", "for": "5s", "tolerance": 0.01},
    {"type": "bad_quality", "for": "3s"},
]


class SeriesOnly:
    """The windows seen only through ``series``: the rules' reference path."""

    def __init__(self, windows: Windows) -> None:
        self.windows = windows

    def series(self, signal: str, since: float) -> tuple[np.ndarray, np.ndarray]:
        return self.windows.series(signal, since)


def _samples(rng: random.Random, t: int, mode: str) -> list[Sample]:
    if mode == "gap":
        return []
    ts = T0 + t + rng.choice([0.0, 0.2, 0.9])
    if mode == "late" and rng.random() < 0.4:
        ts -= rng.choice([0.5, 4.0, 120.0])
    if mode == "future" and rng.random() < 0.4:
        ts += rng.choice([1.5, 30.0])
    if mode == "bad" and rng.random() < 0.6:
        return [Sample.bad(SIG, ts)]
    value = 0.5 if mode == "flat" else rng.gauss(0.0, 1.0)
    return [Sample(SIG, ts, value, Quality.GOOD)]


def _plain(evidence: Evidence | None) -> dict[str, Any] | None:
    if evidence is None:
        return None
    return {k: v for k, v in dataclasses.asdict(evidence).items() if not callable(v)}


@pytest.mark.parametrize("fields", RULES, ids=[str(r["type"]) for r in RULES])
def test_fast_and_plain_series_paths_agree(fields: dict[str, Any]) -> None:
    config = TypeAdapter(RuleConfig).validate_python({"name": "r", "signal": SIG, **fields})
    fast, plain = Rule(config), Rule(config)
    rng = random.Random(str(fields))
    windows = Windows(rng.choice([8, 50]))
    mode, fast_hits = "ok", 0
    for t in range(600):
        if rng.random() < 0.05:
            mode = rng.choice(["ok", "ok", "gap", "late", "future", "bad", "flat"])
        windows.append(_samples(rng, t, mode))
        now = T0 + t + rng.choice([0.0, 0.5])
        level, made = fast.evaluate(windows, now)
        ref_level, ref_made = plain.evaluate(SeriesOnly(windows), now)
        assert level is ref_level, t
        assert _plain(made() if made else None) == _plain(ref_made() if ref_made else None)
        last = windows.latest(SIG)
        fast_hits += last is not None and now - config.max_age <= last[0] <= now
    assert fast_hits > 150  # the O(1) path really ran


def test_latest_is_the_last_to_arrive_not_the_newest() -> None:
    windows = Windows(8)
    windows.append(
        [Sample(SIG, T0 + 10, 1.0, Quality.GOOD), Sample(SIG, T0 + 5, 2.0, Quality.GOOD)]
    )
    assert windows.latest(SIG) == (T0 + 5, 2.0)
    windows.append([Sample.bad(SIG, T0 + 11)])
    last = windows.latest(SIG)
    assert last is not None and last[0] == T0 + 11 and math.isnan(last[1])
    assert windows.latest("press1.never") is None
