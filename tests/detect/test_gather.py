"""The one-pass alignment (align.Gather) agrees with align(), the reference, cell for cell."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from edge_agent.detect.align import Gather, align, grid_end, make_grid
from edge_agent.twin.windows import Windows
from edge_agent.types import Quality, Sample

T0 = 1_800_000_000.0
SIGNALS = ["p.a", "p.b", "p.c"]
KINDS = ["ok", "ok", "ok", "gap", "bad", "fast", "late", "jitter"]


def _batch(rng: random.Random, t: int, kinds: dict[str, str]) -> list[Sample]:
    out = []
    for name in SIGNALS:
        kind = kinds[name]
        if kind == "gap" or (kind == "never" and name == "p.c"):
            continue
        count = rng.randint(2, 5) if kind == "fast" else 1
        for k in range(count):
            ts = T0 + t + k / count
            if kind == "jitter":
                ts += rng.uniform(-0.4, 0.4)
            if kind == "late" and rng.random() < 0.3:
                ts -= rng.choice([0.5, 2.0, 30.0])
            if kind == "bad" and rng.random() < 0.5:
                out.append(Sample.bad(name, ts))
            else:
                out.append(Sample(name, ts, rng.gauss(0.0, 1.0), Quality.GOOD))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_gather_answers_only_what_align_answers_and_the_same(seed: int) -> None:
    rng = random.Random(seed)
    windows = Windows(rng.choice([6, 12, 40, 200]))
    gather = Gather(list(SIGNALS))
    kinds = dict.fromkeys(SIGNALS, "never" if seed == 7 else "ok")
    fast = 0
    for t in range(400):
        if rng.random() < 0.05:
            kinds[rng.choice(SIGNALS)] = rng.choice(KINDS)
        windows.append(_batch(rng, t, kinds))
        fill = rng.choice([0.0, 1.0, 3.0])
        grid = make_grid(grid_end(T0 + t - rng.choice([0.0, 2.0]), 1.0), 1.0, 5)
        reference = align(windows, SIGNALS, grid, fill)
        got = gather.values(windows, grid, fill)
        if got is None:
            continue
        fast += 1
        assert not reference.problem
        np.testing.assert_array_equal(got, reference.values)
        assert got.flags["C_CONTIGUOUS"]
    # The fast path must really run on clean stretches (and never when a signal is missing).
    assert (fast == 0) if seed == 7 else (fast > 20)


def test_gather_reaches_back_past_a_burst_of_fast_samples() -> None:
    windows = Windows(500)
    for t in range(60):
        windows.append([Sample("p.a", T0 + t + k / 20, float(t), Quality.GOOD) for k in range(20)])
        windows.append([Sample(s, T0 + t, float(t), Quality.GOOD) for s in SIGNALS[1:]])
    gather = Gather(list(SIGNALS))
    grid = make_grid(T0 + 58, 1.0, 10)
    got = gather.values(windows, grid, 3.0)
    reference = align(windows, SIGNALS, grid, 3.0)
    assert got is not None and gather.size >= 20 * 10
    np.testing.assert_array_equal(got, reference.values)
    assert not math.isnan(float(got.sum()))
