"""Windows: numpy rings identical to what SQLite holds, warmed at restart."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edge_agent.twin.config import TwinConfig
from edge_agent.twin.windows import Windows
from edge_agent.types import Quality, Sample
from tests.twin.conftest import T0, feed, open_store

SIGNALS = [f"plc.s{i}" for i in range(5)]


def _as_arrays(samples: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
    ts = np.array([s.ts for s in samples])
    values = np.array([math.nan if s.value is None else s.value for s in samples])
    return ts, values


@pytest.mark.parametrize("capacity", [1, 16, 64])
def test_windows_hold_exactly_what_sqlite_holds(db: Path, capacity: int) -> None:
    store = open_store(db, TwinConfig(max_samples=capacity), T0 + 1000)
    windows = Windows(capacity)
    for batch in feed(SIGNALS, 150):
        store.write(batch)
        windows.append(batch)
    for name in SIGNALS:
        since = T0 + 140
        ts, values = windows.series(name, since)
        ref_ts, ref_values = _as_arrays(store.history(name, since))
        np.testing.assert_array_equal(ts, ref_ts)
        np.testing.assert_array_equal(values, ref_values)  # NaN == NaN here
        assert len(windows.series(name, 0.0)[0]) == capacity
    store.close()


def test_restart_warms_windows_from_the_store(db: Path) -> None:
    config = TwinConfig(max_samples=500)
    store = open_store(db, config, T0 + 1000)
    live = Windows(32)
    for batch in feed(SIGNALS, 200):
        store.write(batch)
        live.append(batch)
    store.close()
    again = open_store(db, config, T0 + 1000)
    warmed = Windows(32, signals=SIGNALS[:3])
    warmed.warm(again, SIGNALS, since=T0)
    assert warmed.signals() == SIGNALS[:3]
    for name in SIGNALS[:3]:
        np.testing.assert_array_equal(warmed.series(name, 0.0)[0], live.series(name, 0.0)[0])
        np.testing.assert_array_equal(warmed.series(name, 0.0)[1], live.series(name, 0.0)[1])
    again.close()


def test_unknown_signal_and_bad_values() -> None:
    windows = Windows(4)
    ts, values = windows.series("none", 0.0)
    assert ts.shape == values.shape == (0,)
    windows.append([Sample.bad("a.b", 1.0), Sample("a.b", 2.0, 3.0, Quality.GOOD)])
    ts, values = windows.series("a.b", 0.0)
    assert list(ts) == [1.0, 2.0] and math.isnan(values[0]) and values[1] == 3.0
    with pytest.raises(ValueError, match="capacity"):
        Windows(0)
