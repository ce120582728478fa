"""Alignment (align.Aligner) gives what its definition gives, cell for cell, and the same
problem: each signal's series since ``grid[0] - fill_limit``, held onto the grid alone."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from edge_agent.detect.align import (
    BAD_TEXT,
    Aligned,
    Aligner,
    describe,
    grid_end,
    hold,
    make_grid,
    newest_is_bad,
)
from edge_agent.twin.windows import Windows
from edge_agent.types import Quality, Sample

T0 = 1_800_000_000.0
SIGNALS = ["p.a", "p.b", "p.c"]
KINDS = ["ok", "ok", "ok", "gap", "bad", "fast", "late", "jitter"]


class SeriesOnly:
    """The windows seen only through ``series``: not a twin's windows, no gather."""

    def __init__(self, windows: Windows) -> None:
        self.windows = windows

    def series(self, signal: str, since: float) -> tuple[np.ndarray, np.ndarray]:
        return self.windows.series(signal, since)


def definition(windows: Windows, grid: np.ndarray, fill: float) -> Aligned:
    """Per signal: its series, held alone; the first signal with a NaN cell described."""
    since = float(grid[0]) - fill
    columns, problem = [], ""
    for signal in SIGNALS:
        ts, values = windows.series(signal, since)
        column = hold(ts, values, grid, fill)
        if not problem and np.isnan(column).any():
            problem = describe(signal, ts, values, grid, column, fill)
            if newest_is_bad(windows, signal, float(grid[-1])):
                problem = BAD_TEXT.format(signal)
        columns.append(column)
    return Aligned(grid, np.stack(columns, axis=1), problem)


def test_a_signal_marked_bad_long_ago_and_silent_since_reads_bad_not_a_gap() -> None:
    """A down source marks its signals BAD every BAD_REPEAT only: the reason stays put."""
    windows = Windows(100)
    windows.append([Sample(s, T0 + t, 1.0, Quality.GOOD) for t in range(10) for s in SIGNALS])
    windows.append([Sample.bad("p.b", T0 + 10)])
    windows.append(
        [Sample(s, T0 + t, 1.0, Quality.GOOD) for t in range(10, 50) for s in ("p.a", "p.c")]
    )
    for end in (T0 + 12, T0 + 25, T0 + 39):  # the mark held, then aged past fill_limit
        got = Aligner(list(SIGNALS)).align(windows, make_grid(end, 1.0, 5), 2.0)
        assert got.problem == "p.b: BAD quality (or a NaN value)", end
    windows.append([Sample("p.b", T0 + 40, 1.0, Quality.GOOD)])
    got = Aligner(list(SIGNALS)).align(windows, make_grid(T0 + 46, 1.0, 5), 2.0)
    assert got.problem == "p.b: no sample within 2s"  # good then silent: a gap


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
def test_aligner_gives_the_definition(seed: int) -> None:
    rng = random.Random(seed)
    windows = Windows(rng.choice([6, 12, 40, 200]))
    aligner, plain = Aligner(list(SIGNALS)), Aligner(list(SIGNALS))
    kinds = dict.fromkeys(SIGNALS, "never" if seed == 7 else "ok")
    known = problems = 0
    for t in range(400):
        if rng.random() < 0.05:
            kinds[rng.choice(SIGNALS)] = rng.choice(KINDS)
        windows.append(_batch(rng, t, kinds))
        fill = rng.choice([0.0, 1.0, 3.0])
        grid = make_grid(grid_end(T0 + t - rng.choice([0.0, 2.0]), 1.0), 1.0, 5)
        expected = definition(windows, grid, fill)
        for got in (
            aligner.align(windows, grid, fill),
            plain.align(SeriesOnly(windows), grid, fill),
        ):
            assert got.problem == expected.problem, t
            np.testing.assert_array_equal(got.values, expected.values)
            assert got.values.flags["C_CONTIGUOUS"]
        known += not expected.problem
        problems += bool(expected.problem)
    # Both outcomes really occur (seed 7: a signal is missing nearly all along).
    assert problems > 20 and (known > 20 or seed == 7)


def test_a_gather_reaches_back_past_a_burst_of_fast_samples() -> None:
    windows = Windows(500)
    for t in range(60):
        windows.append([Sample("p.a", T0 + t + k / 20, float(t), Quality.GOOD) for k in range(20)])
        windows.append([Sample(s, T0 + t, float(t), Quality.GOOD) for s in SIGNALS[1:]])
    aligner = Aligner(list(SIGNALS))
    grid = make_grid(T0 + 58, 1.0, 10)
    got = aligner.align(windows, grid, 3.0)
    assert not got.problem and aligner.size >= 20 * 10
    np.testing.assert_array_equal(got.values, definition(windows, grid, 3.0).values)
    assert not math.isnan(float(got.values.sum()))


def _delayed(rng: random.Random, t: int, kinds: dict[str, str]) -> list[Sample]:
    """``_batch``, and a "delayed" signal whose samples come in time order but 4.5 s old:
    older than the last grid time, so an aligned window cannot simply move on."""
    out = _batch(rng, t, {s: "ok" if k == "delayed" else k for s, k in kinds.items()})
    late = {s for s, k in kinds.items() if k == "delayed"}
    return [s._replace(ts=s.ts - 4.5) if s.signal in late else s for s in out]


@pytest.mark.parametrize("seed", range(8))
def test_a_window_moved_on_step_by_step_gives_the_definition(seed: int) -> None:
    rng = random.Random(seed)
    windows = Windows(rng.choice([24, 30, 64]))  # 24: fast signals drop held samples
    aligner = Aligner(list(SIGNALS))
    fill, width = rng.choice([1.0, 3.0]), 20
    kinds = dict.fromkeys(SIGNALS, "ok")
    moved = afresh = 0
    handed = []
    t = 0
    for _ in range(700):
        if rng.random() < 0.03:
            kinds[rng.choice(SIGNALS)] = rng.choice([*KINDS, "delayed"])
        if rng.random() < 0.03:
            kinds = dict.fromkeys(SIGNALS, "ok")
        windows.append(_delayed(rng, t, kinds))
        grid = make_grid(grid_end(T0 + t - 2.0, 1.0), 1.0, width)
        following = aligner._follow is not None
        got = aligner.align(windows, grid, fill)
        expected = definition(windows, grid, fill)
        assert got.problem == expected.problem, t
        np.testing.assert_array_equal(got.values, expected.values)
        handed.append((got.values, got.values.copy()))
        moved += following and aligner._follow is not None
        afresh += not following and not expected.problem
        t += 1 if rng.random() < 0.97 else 2  # now and then a step is skipped
    # Both paths really run, many times each.
    assert moved > 100 and afresh > 10, (moved, afresh)
    for kept, copy in handed:  # a window handed out is never written again
        np.testing.assert_array_equal(kept, copy)
