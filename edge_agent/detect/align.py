"""Align signals sampled at their own times onto one common step, causally.

The value of a signal at grid time ``t`` is its last sample at or before ``t``
(sample-and-hold), so nothing after ``t`` is ever used. That value is trusted
only while it is at most ``fill_limit`` seconds old: a longer gap, or a BAD
sample (NaN in the windows), leaves a NaN cell, and :func:`align` says which
signal and why. The caller skips scoring such a window; gaps and BAD samples are
never fed to a model as numbers.

:class:`Gather` is the fast path of the same computation for the windows of the
twin: when every signal's ring is in time order it takes the newest samples of
all the asset's signals in one numpy gather and holds them onto the grid in one
pass, instead of a copy, a filter and a search per signal. It answers only when
every cell is known; otherwise :func:`align` (the reference) runs and says why.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge_agent.twin.windows import Windows

WARMING_UP = "warming up: not a full window of history yet"


class SeriesSource(Protocol):
    """What alignment needs from the windows (``twin.windows.Windows``)."""

    def series(self, signal: str, since: float) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True, slots=True)
class Aligned:
    """Values on the grid: ``values[time, signal]``; ``problem`` is "" when all are known."""

    grid: np.ndarray
    values: np.ndarray
    problem: str


def grid_end(now: float, step: float) -> float:
    """The last grid time at or before ``now``: grids are anchored at epoch 0."""
    return math.floor(now / step + 1e-9) * step


def make_grid(end: float, step: float, count: int) -> np.ndarray:
    """``count`` grid times ending at ``end``, oldest first."""
    return end - _offsets(step, count)


@functools.lru_cache(maxsize=64)
def _offsets(step: float, count: int) -> np.ndarray:
    offsets = step * np.arange(count - 1, -1, -1, dtype=np.float64)
    offsets.flags.writeable = False  # shared between calls
    return offsets


def hold(ts: np.ndarray, values: np.ndarray, grid: np.ndarray, fill_limit: float) -> np.ndarray:
    """Sample-and-hold ``values`` at ``ts`` onto ``grid``; NaN where too old or none."""
    if ts.size == 0:
        return np.full(grid.shape, np.nan)
    if ts.size > 1 and not bool((ts[1:] >= ts[:-1]).all()):
        order = np.argsort(ts, kind="stable")
        ts, values = ts[order], values[order]
    idx = np.searchsorted(ts, grid, side="right") - 1
    safe = np.maximum(idx, 0)
    out = values[safe].astype(np.float64)
    out[(idx < 0) | (grid - ts[safe] > fill_limit + 1e-9)] = np.nan
    return out


def align(
    windows: SeriesSource,
    signals: Sequence[str],
    grid: np.ndarray,
    fill_limit: float,
) -> Aligned:
    """Values of ``signals`` on ``grid`` with the first problem described, if any."""
    since = float(grid[0]) - fill_limit
    columns = []
    problem = ""
    for signal in signals:
        ts, values = windows.series(signal, since)
        column = hold(np.asarray(ts, np.float64), np.asarray(values, np.float64), grid, fill_limit)
        if not problem and np.isnan(column).any():
            problem = _describe(signal, ts, values, grid, column, fill_limit)
        columns.append(column)
    matrix = np.stack(columns, axis=1) if columns else np.empty((grid.size, 0))
    return Aligned(grid, matrix, problem)


def _describe(
    signal: str,
    ts: np.ndarray,
    values: np.ndarray,
    grid: np.ndarray,
    column: np.ndarray,
    fill_limit: float,
) -> str:
    # No counts in the text: the caller logs a problem once, until it changes.
    if len(ts) == 0:
        return f"{signal}: no recent samples"
    held_bad = hold(
        np.asarray(ts, np.float64), np.isnan(values).astype(np.float64), grid, fill_limit
    )
    if np.nansum(held_bad) > 0:
        return f"{signal}: BAD quality (or a NaN value)"
    missing = np.isnan(column)
    leading = int(np.argmin(missing)) if not missing.all() else missing.size
    if not missing[leading:].any() and float(np.min(ts)) > float(grid[0]) - fill_limit:
        return WARMING_UP
    return f"{signal}: no sample within {fill_limit:g}s"


class Gather:
    """Aligns one set of signals from :class:`Windows` rows in one pass (the fast path)."""

    def __init__(self, signals: list[str]) -> None:
        self.signals = signals
        self.size = 0
        """Samples per signal gathered; grows when a signal samples faster than the grid."""

    def values(self, windows: Windows, grid: np.ndarray, fill_limit: float) -> np.ndarray | None:
        """``values[time, signal]`` as :func:`align` gives it, or None when a cell is unknown,
        a ring is short or out of time order (then call :func:`align`: it says why)."""
        found = windows.rows(self.signals)
        if found is None:
            return None
        rows, held = found
        limit = windows.capacity
        size = min(max(self.size, grid.size + 8), limit)
        since = float(grid[0]) - fill_limit
        while True:
            ts, values = windows.tails(rows, size)
            if _covered(held, ts[:, 0], size, since):
                break
            if size >= limit:
                return None
            size = min(2 * size, limit)
        self.size = max(self.size, size)
        padding = [max(size - h, 0) for h in held]
        return held_block(ts, values, padding, grid, since, fill_limit)


def _covered(held: list[int], oldest: np.ndarray, size: int, since: float) -> bool:
    """True when every row's samples newer than ``since`` were all gathered: it holds
    no more than ``size`` or its oldest gathered one is older (time order: so are all
    before it)."""
    if bool((oldest < since).all()):
        return True
    return all(h <= size or t < since for h, t in zip(held, oldest.tolist(), strict=True))


def held_block(
    ts: np.ndarray,
    values: np.ndarray,
    padding: list[int],
    grid: np.ndarray,
    since: float,
    fill_limit: float,
) -> np.ndarray | None:
    """:func:`hold` of rows of time-ordered samples, all rows at once.

    Row ``r`` starts with ``padding[r]`` NaN timestamps (slots never written).

    Returns:
        ``[time, row]``, or None when any cell would be NaN.
    """
    rows, size = ts.shape
    width = grid.size
    # How many samples of each row are at or before each grid time: a histogram of
    # the grid interval each sample falls in, accumulated along the grid.
    bins, starts = _layout(rows, width, size)
    interval = np.searchsorted(grid, ts.ravel(), side="left")
    interval += bins
    counts = np.bincount(interval, minlength=rows * (width + 1)).reshape(rows, width + 1)
    before = counts[:, :width].cumsum(axis=1)
    if not before[:, 0].all():
        return None
    index = before - 1
    index += starts if not any(padding) else starts + np.array(padding)[:, np.newaxis]
    at = ts.take(index)
    # ``at`` is a real sample at or before its grid time, later along the grid: the
    # first column is the oldest of each row.
    if not (bool((at[:, 0] >= since).all()) and float((grid - at).max()) <= fill_limit + 1e-9):
        return None
    out = values.take(index.T)  # [time, row], C order as the model wants it
    if np.isnan(out).any():
        return None
    return out


@functools.lru_cache(maxsize=64)
def _layout(rows: int, width: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per gathered sample its row's first histogram bin; per row its first sample."""
    bins = np.repeat(np.arange(0, rows * (width + 1), width + 1), size)
    starts = np.arange(0, rows * size, size)[:, np.newaxis]
    bins.flags.writeable = starts.flags.writeable = False  # shared between calls
    return bins, starts
