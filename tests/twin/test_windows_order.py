"""Windows read fast while a ring is in time order, and exactly as before when it is not."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from edge_agent.twin.windows import Windows
from edge_agent.types import Quality, Sample

T0 = 1_800_000_000.0


def _stream(rng: random.Random, steps: int, disorder: float) -> list[Sample]:
    """One signal: mostly in time order, some late, NaN-timed, duplicate-timed or BAD samples."""
    out: list[Sample] = []
    for i in range(steps):
        ts = T0 + i
        roll = rng.random()
        if roll < disorder:
            ts -= rng.choice([0.5, 3.0, 40.0])
        elif roll < 1.5 * disorder:
            ts = math.nan
        elif roll < 2 * disorder and out:
            ts = out[-1].ts
        if rng.random() < 0.05:
            out.append(Sample.bad("a.x", ts))
        else:
            out.append(Sample("a.x", ts, rng.gauss(0.0, 1.0), Quality.GOOD))
    return out


def _reference(kept: list[Sample], since: float) -> tuple[list[float], list[float]]:
    """What the windows promise: the last ``capacity`` samples, arrival order, ts >= since."""
    chosen = [s for s in kept if s.ts >= since]
    return [s.ts for s in chosen], [math.nan if s.value is None else s.value for s in chosen]


@pytest.mark.parametrize("disorder", [0.0, 0.01, 0.1])
@pytest.mark.parametrize("capacity", [1, 7, 64])
def test_series_equals_a_plain_filter_whatever_the_order(capacity: int, disorder: float) -> None:
    rng = random.Random(capacity * 100 + int(disorder * 100))
    windows = Windows(capacity)
    samples = _stream(rng, 300, disorder)
    read = 0
    for i, sample in enumerate(samples):
        windows.append([sample])
        kept = samples[max(0, i + 1 - capacity) : i + 1]
        for since in (-math.inf, T0 + i - 5.5, T0 + i - 40, T0 + i + 1, math.nan):
            ts, values = windows.series("a.x", since)
            ref_ts, ref_values = _reference(kept, since)
            np.testing.assert_array_equal(ts, ref_ts)
            np.testing.assert_array_equal(values, ref_values)
            for most in (1, 3, 16):
                recent = windows.recent("a.x", since, most)
                if recent is None:  # only when the arrays are the way
                    assert len(ref_ts) >= most or windows.rows(["a.x"]) is None
                    continue
                read += 1
                np.testing.assert_array_equal(recent[0], ref_ts)
                np.testing.assert_array_equal(recent[1], ref_values)
        last = windows.latest("a.x")
        assert last is not None
        np.testing.assert_array_equal(last, (sample.ts, sample.value or math.nan))
    # The lists are read back often (a long ring with 10 % disorder is rarely in order).
    assert read > (50 if capacity * disorder > 1 else 1000)
    assert windows.recent("a.never", 0.0) == ([], [])


def test_a_late_sample_makes_the_ring_unordered_until_it_has_left() -> None:
    windows = Windows(4)
    windows.append([Sample("a.x", T0 + i, float(i), Quality.GOOD) for i in range(4)])
    assert windows.rows(["a.x"]) == ([0], [4])
    windows.append([Sample("a.x", T0 + 1.5, 9.0, Quality.GOOD)])  # older than the one before
    for i in range(4):
        assert windows.rows(["a.x"]) is None  # the late sample (or its predecessor) is held
        windows.append([Sample("a.x", T0 + 10 + i, float(i), Quality.GOOD)])
    assert windows.rows(["a.x"]) == ([0], [4])
    ts, _ = windows.series("a.x", 0.0)
    assert list(ts) == [T0 + 10 + i for i in range(4)]


def test_rows_need_every_signal_and_tails_wrap_the_ring() -> None:
    windows = Windows(5)
    for i in range(12):  # wraps twice
        windows.append([Sample("a.x", T0 + i, float(i), Quality.GOOD)])
        windows.append([Sample("a.y", T0 + i, 10.0 + i, Quality.GOOD)])
    assert windows.rows(["a.x", "a.never"]) is None
    assert windows.rows(["a.y", "a.x"]) == ([1, 0], [5, 5])
    for size, first in ((3, 9), (5, 7)):  # (12 - 3) % 5 + 3 <= 5; (12 - 5) % 5 + 5 > 5: wraps
        ts, values = windows.tails([1, 0], size)
        expected = [T0 + first + k for k in range(size)]
        np.testing.assert_array_equal(ts, [expected] * 2)
        np.testing.assert_array_equal(
            values,
            [[10.0 + first + k for k in range(size)], [float(first + k) for k in range(size)]],
        )
    young = Windows(8)
    young.append([Sample("a.x", T0 + i, float(i), Quality.GOOD) for i in range(3)])
    ts, _ = young.tails([0], 5)  # two slots never written: NaN padding in front
    assert np.isnan(ts[0, :2]).all() and list(ts[0, 2:]) == [T0, T0 + 1, T0 + 2]


@pytest.mark.parametrize("seed", range(4))
def test_gather_is_rows_then_tails(seed: int) -> None:
    rng = random.Random(seed)
    windows = Windows(rng.choice([5, 16]))
    names = ["a.x", "a.y", "a.z"]
    agreed = 0
    for t in range(200):
        for name in names:
            if rng.random() < 0.8 or t < 3:  # rows fill at their own pace; some go late
                ts = T0 + t - (rng.choice([0.5, 9.0]) if rng.random() < 0.03 else 0.0)
                windows.append([Sample(name, ts, rng.gauss(0.0, 1.0), Quality.GOOD)])
        signals = rng.sample(names + ["a.never"] * (t % 50 == 0), k=2)
        size = rng.choice([1, 3, 8, 40])
        found, rows = windows.gather(signals, size), windows.rows(signals)
        if rows is None:
            assert found is None
            continue
        assert found is not None and found[2] == rows[1]
        for got, expected in zip(found[:2], windows.tails(rows[0], size), strict=True):
            np.testing.assert_array_equal(got, expected)
        agreed += 1
    assert agreed > 100 and windows.gather([], 3) is None
