"""Align signals sampled at their own times onto one common step, causally.

The value of a signal at grid time ``t`` is its last sample at or before ``t``
(sample-and-hold), so nothing after ``t`` is ever used. That value is trusted
only while it is at most ``fill_limit`` seconds old: a longer gap, or a BAD
sample (NaN in the windows), leaves a NaN cell, and :func:`align` says which
signal and why. The caller skips scoring such a window; gaps and BAD samples are
never fed to a model as numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

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
    return end - step * np.arange(count - 1, -1, -1, dtype=np.float64)


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
