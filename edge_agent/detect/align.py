"""Align signals sampled at their own times onto one common step, causally.

The value of a signal at grid time ``t`` is its last sample at or before ``t``
(sample-and-hold), so nothing after ``t`` is ever used. That value is trusted
only while it is at most ``fill_limit`` seconds old: a longer gap, or a BAD
sample (NaN in the windows), leaves a NaN cell, and :func:`align` says which
signal and why. The caller skips scoring such a window; gaps and BAD samples are
never fed to a model as numbers.

:class:`Aligner` computes it for one set of signals from a block of their newest
samples, one row per signal: for the windows of the twin whose rings are in time order
the block is one numpy gather (:meth:`Windows.gather`), otherwise each signal's series,
sorted by time. The values of all the signals are held onto the grid in one pass. When a
cell is unknown, the rows of that same block say which signal and why (:func:`hold` per
row). :func:`align` is the same call without keeping an :class:`Aligner`.

From one step to the next the grid usually moves by one step: the aligner then keeps the
rows of its last window and reads one new row out of the rings (:class:`_Follow`), as
long as it can show that this is the window a fresh gather would give, cell for cell.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edge_agent.twin.windows import Windows

WARMING_UP = "warming up: not a full window of history yet"
# ufunc methods, without the Python wrappers of ndarray.min/max/sum/cumsum (~1 us a call)
_MIN: Any = np.minimum.reduce
_MAX: Any = np.maximum.reduce
_SUM: Any = np.add.reduce
_ACCUMULATE: Any = np.add.accumulate
BUFFERED = 3
"""A followed window is a view of a buffer this many windows long (see :class:`_Follow`)."""


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
    return Aligner(list(signals)).align(windows, grid, fill_limit)


Block = tuple[np.ndarray, np.ndarray, list[int] | None]
"""Timestamps and values ``[signal, sample]``, each row in time order, and how many NaN
slots pad each row in front (None: none)."""


class Aligner:
    """Aligns one set of signals onto grids, one call per step."""

    def __init__(self, signals: list[str]) -> None:
        self.signals = signals
        self.size = 0
        """Samples per signal gathered; grows when a signal samples faster than the grid."""
        self._follow: _Follow | None = None
        self._end = math.nan
        """The end of the last grid aligned."""

    def align(self, windows: SeriesSource, grid: np.ndarray, fill_limit: float) -> Aligned:
        """``values[time, signal]``; when a cell is unknown, ``problem`` says where first."""
        if not self.signals:
            return Aligned(grid, np.empty((grid.size, 0)), "")
        twin = windows if isinstance(windows, Windows) else None
        follow, self._follow = self._follow, None
        if follow is not None:
            self._end = follow.grid[-1]
            same = twin is follow.windows and fill_limit == follow.fill
            values = follow.advance(grid) if same else None
            if values is not None:
                self._follow = follow
                return Aligned(grid, values, "")
        since = float(grid[0]) - fill_limit
        block = self._gather(twin, grid.size, since) if twin is not None else None
        if block is None:
            block = series_block(windows, self.signals, since)
        held = held_block(*block, grid, since, fill_limit)
        end, self._end = self._end, float(grid[-1])
        if held is None:
            return explain(self.signals, block, grid, since, fill_limit, windows)
        # Worth following (about 10 us to start) only when the grid moves by one step.
        if twin is not None and grid.size > 1 and float(grid[-2]) == end:
            self._follow = _Follow.start(twin, self.signals, grid, fill_limit, *held)
        return Aligned(grid, held[0], "")

    def _gather(self, windows: Windows, width: int, since: float) -> Block | None:
        """The newest samples of every signal back to ``since``, in one gather; None
        unless every signal has samples and its ring is in time order."""
        limit = windows.capacity
        size = min(max(self.size, width + 8), limit)
        while True:
            found = windows.gather(self.signals, size)
            if found is None:
                return None
            ts, values, held = found
            # At the capacity every ring is gathered whole: covered.
            if size >= limit or _MAX(ts[:, 0]) < since or _covered(held, ts[:, 0], size, since):
                break
            size = min(2 * size, limit)
        self.size = max(self.size, size)
        padding = None if min(held) >= size else [max(size - h, 0) for h in held]
        return ts, values, padding


class _Follow:
    """The last aligned window of a twin's rings, moved on by one grid step at a time.

    When the grid moved by exactly one step, the new window is the old one without its
    first row, plus one row held at the new grid time, provided what the old rows were
    held from is unchanged: every sample that arrived since is newer than the old grid's
    end (the rings are in time order), and the samples the kept rows hold are still in the
    rings. That is the window :func:`held_block` gives on a fresh gather, cell for cell;
    whenever it cannot be shown (a late sample, a skipped step, a gap, a BAD value, an
    unordered ring), the caller aligns afresh.
    """

    def __init__(
        self,
        windows: Windows,
        rows: list[int],
        fill: float,
        grid: list[float],
        values: np.ndarray,
        held: deque[list[float]],
        counts: list[int],
    ) -> None:
        self.windows = windows
        self.rows = rows
        self.fill = fill
        self.grid = grid
        width = len(grid)
        # Each window is a view of rows of this buffer, which are never written again
        # (a window handed out may be kept, e.g. by the evidence of an alert); when it is
        # full, the next window starts a new one.
        self.buffer = np.empty((BUFFERED * width, values.shape[1]))
        self.buffer[:width] = values
        self.last = width - 1
        """The buffer's row of the window's newest time."""
        self.held = held
        """Per grid time, oldest first: the time of the sample each row holds there."""
        self.counts = counts

    @classmethod
    def start(
        cls,
        windows: Windows,
        signals: list[str],
        grid: np.ndarray,
        fill: float,
        values: np.ndarray,
        at: np.ndarray,
    ) -> _Follow | None:
        """From a window just aligned afresh (``at``: the times held, ``[row, time]``)."""
        found = windows.rows(signals)
        if found is None:
            return None
        rows = found[0]
        now = windows.last_at(rows, float(grid[-1]))
        if now is None:
            return None
        held = deque(at.T.tolist(), maxlen=grid.size)
        return cls(windows, rows, fill, grid.tolist(), values, held, now[2])

    def advance(self, grid: np.ndarray) -> np.ndarray | None:
        """The window on ``grid``; None unless it moved by one step and can be followed."""
        times = grid.tolist()
        if len(times) < 2 or times[:-1] != self.grid[1:]:
            return None
        end, first = times[-1], self.held[1]
        # The checks of held_block on the kept first row (its own age was checked when
        # it was new) and on the new row.
        if not min(first) >= times[0] - self.fill:
            return None
        found = self.windows.last_at(self.rows, end, self.counts, self.grid[-1], first)
        if found is None:
            return None
        ts, row, counts = found
        total = sum(row)
        if not end - min(ts) <= self.fill + 1e-9 or total != total:
            return None
        self.grid, self.counts = times, counts
        self.held.append(ts)
        return self._put(row)

    def _put(self, row: list[float]) -> np.ndarray:
        """The window with ``row`` as its newest time, one step on from the last."""
        buffer, last, width = self.buffer, self.last + 1, len(self.grid)
        if last == buffer.shape[0]:
            buffer = np.empty_like(buffer)
            last = width - 1
            buffer[:last] = self.buffer[-last:]
            self.buffer = buffer
        buffer[last] = row
        self.last = last
        return buffer[last - width + 1 : last + 1]


def series_block(windows: SeriesSource, signals: Sequence[str], since: float) -> Block:
    """Each signal's series since ``since``, sorted by time (stable), as padded rows."""
    series = []
    for signal in signals:
        ts, values = windows.series(signal, since)
        ts, values = np.asarray(ts, np.float64), np.asarray(values, np.float64)
        if ts.size > 1 and not bool((ts[1:] >= ts[:-1]).all()):
            order = np.argsort(ts, kind="stable")
            ts, values = ts[order], values[order]
        series.append((ts, values))
    size = max(ts.size for ts, _ in series)
    block_ts = np.full((len(series), size), np.nan)
    block_values = np.full((len(series), size), np.nan)
    padding = []
    for row, (ts, values) in enumerate(series):
        pad = size - ts.size
        block_ts[row, pad:], block_values[row, pad:] = ts, values
        padding.append(pad)
    return block_ts, block_values, padding


def explain(
    signals: Sequence[str],
    block: Block,
    grid: np.ndarray,
    since: float,
    fill_limit: float,
    windows: SeriesSource | None = None,
) -> Aligned:
    """Each row held onto the grid alone (:func:`hold`, NaN where unknown), and the first
    signal with an unknown cell described.

    A signal whose newest sample in ``windows`` up to the grid's end is BAD is described
    as BAD however old that sample is (:func:`newest_is_bad`)."""
    ts, values, padding = block
    columns = []
    problem = ""
    for row, signal in enumerate(signals):
        first = padding[row] if padding else 0
        row_ts, row_values = ts[row, first:], values[row, first:]
        keep = row_ts >= since  # a gather reaches further back than a series
        row_ts, row_values = row_ts[keep], row_values[keep]
        column = hold(row_ts, row_values, grid, fill_limit)
        if not problem and np.isnan(column).any():
            if windows is not None and newest_is_bad(windows, signal, float(grid[-1])):
                problem = BAD_TEXT.format(signal)
            else:
                problem = describe(signal, row_ts, row_values, grid, column, fill_limit)
        columns.append(column)
    return Aligned(grid, np.stack(columns, axis=1), problem)


BAD_TEXT = "{}: BAD quality (or a NaN value)"


def newest_is_bad(windows: SeriesSource, signal: str, end: float) -> bool:
    """Whether the newest sample of ``signal`` at or before ``end`` is BAD (NaN).

    A down source marks its signals BAD once and then only every ``BAD_REPEAT``
    seconds (``sources.poll``): judged by the samples since ``fill_limit`` alone, the
    reason of an unscored window (logged once per change) would flip between "BAD"
    and "no sample" as each mark ages. Read only when a window has an unknown cell.
    """
    ts, values = windows.series(signal, -math.inf)
    ts, values = np.asarray(ts, np.float64), np.asarray(values, np.float64)
    inside = ts <= end
    if not inside.any():
        return False
    ts, values = ts[inside], values[inside]
    newest = ts.size - 1 - int(np.argmax(ts[::-1]))  # the last to arrive of the newest
    return bool(np.isnan(values[newest]))


def describe(
    signal: str,
    ts: np.ndarray,
    values: np.ndarray,
    grid: np.ndarray,
    column: np.ndarray,
    fill_limit: float,
) -> str:
    """Why ``column`` (``signal`` held onto ``grid`` from ``ts``, ``values``) has a NaN cell."""
    # No counts in the text: the caller logs a problem once, until it changes.
    if len(ts) == 0:
        return f"{signal}: no recent samples"
    held_bad = hold(
        np.asarray(ts, np.float64), np.isnan(values).astype(np.float64), grid, fill_limit
    )
    if np.nansum(held_bad) > 0:
        return BAD_TEXT.format(signal)
    missing = np.isnan(column)
    leading = int(np.argmin(missing)) if not missing.all() else missing.size
    if not missing[leading:].any() and float(np.min(ts)) > float(grid[0]) - fill_limit:
        return WARMING_UP
    return f"{signal}: no sample within {fill_limit:g}s"


def _covered(held: list[int], oldest: np.ndarray, size: int, since: float) -> bool:
    """True when every row's samples newer than ``since`` were all gathered: it holds
    no more than ``size`` or its oldest gathered one is older (time order: so are all
    before it)."""
    if _MAX(oldest) < since:  # NaN (a padded row) is not older: it falls through
        return True  # (the aligner checks this first, inline)
    return all(h <= size or t < since for h, t in zip(held, oldest.tolist(), strict=True))


def held_block(
    ts: np.ndarray,
    values: np.ndarray,
    padding: list[int] | None,
    grid: np.ndarray,
    since: float,
    fill_limit: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`hold` of rows of time-ordered samples newer than ``since``, all rows at once.

    Row ``r`` starts with ``padding[r]`` NaN timestamps (slots never written); samples
    older than ``since`` may precede the others: they are held by no known cell.

    Returns:
        ``[time, row]`` and the times of the samples held (``[row, time]``), or None when
        any cell would be unknown (NaN in :func:`hold`).
    """
    rows, size = ts.shape
    width = grid.size
    # How many samples of each row are at or before each grid time: a histogram of
    # the grid interval each sample falls in (NaN: past the last), accumulated.
    bins, origins = _layout(rows, width, size)
    interval = grid.searchsorted(ts.ravel(), side="left")
    interval += bins
    counts = np.bincount(interval, minlength=rows * (width + 1)).reshape(rows, width + 1)
    if np.count_nonzero(counts[:, 0]) < rows:  # a row with nothing at or before the grid
        return None
    index: np.ndarray = _ACCUMULATE(counts[:, :width], axis=1)
    index += origins if padding is None else origins + np.array(padding)[:, np.newaxis]
    at = ts.take(index)
    # ``at`` is a real sample at or before its grid time, later along the grid: the
    # first column is the oldest of each row.
    if not (_MIN(at[:, 0]) >= since and _MAX(grid - at, axis=None) <= fill_limit + 1e-9):
        return None
    out = values.take(index.T)  # [time, row], C order as the model wants it
    # Any NaN makes the sum NaN (an inf pair too: then explain() finds no gap).
    if math.isnan(_SUM(out, axis=None)):
        return None
    return out, at


@functools.lru_cache(maxsize=64)
def _layout(rows: int, width: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per gathered sample its row's first histogram bin; per row the index before its
    first sample (a count of samples plus it is the index of the last one counted)."""
    bins = np.repeat(np.arange(0, rows * (width + 1), width + 1), size)
    origins = np.arange(-1, rows * size - 1, size)[:, np.newaxis]
    bins.flags.writeable = origins.flags.writeable = False  # shared between calls
    return bins, origins
