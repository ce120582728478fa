"""In-memory windows: a numpy ring of recent samples per signal, for the detectors.

Every signal's ring is one row of two ``[signals, capacity]`` arrays (timestamps,
values), so a detector can gather the newest samples of all its signals in one
numpy call (:meth:`Windows.tails`), or read a few of the newest as Python floats
(:meth:`Windows.last_at`, :meth:`Windows.recent`). Appending is O(1) per sample and allocates
only when a new signal appears. BAD samples are kept as NaN so a detector sees
the gap. At start the rings are warmed from the twin's SQLite history so a
restart does not leave the models blind for a whole window.

Samples are kept in arrival order, whatever their timestamps. Each ring knows
whether the samples it holds are also in time order (the usual case): then a
series is a binary search and a copy of its tail; a sample older than the one
before it (a device clock stepped back, a late retry) makes the ring "unordered"
until that sample has left it, and reads fall back to a filter over the whole
ring, exactly as before. Both paths give the same arrays.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from itertools import compress
from operator import itemgetter
from typing import TYPE_CHECKING

import numpy as np

from edge_agent.types import Sample

if TYPE_CHECKING:
    from edge_agent.twin.store import SignalStore

_EMPTY = np.empty(0, dtype=np.float64)
_SIGNAL = itemgetter(0)  # Sample.signal, as a C callable


class Windows:
    """The newest ``capacity`` samples of each signal, in memory.

    Args:
        capacity: samples kept per signal.
        signals: if given, only these signals are kept (the detectors' inputs).
    """

    def __init__(self, capacity: int, signals: Iterable[str] | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"window capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._only = None if signals is None else frozenset(signals)
        self._rows: dict[str, int] = {}
        rows = 0 if self._only is None else len(self._only)
        # Uninitialised: memory is touched (resident) only as the rings fill, as before.
        self._ts = np.empty((rows, capacity), dtype=np.float64)
        self._values = np.empty((rows, capacity), dtype=np.float64)
        self._flat = _flat(self._ts), _flat(self._values)
        self._count: list[int] = []
        """Samples ever appended, per row."""
        self._ordered_at: list[int] = []
        """Per row: the count from which the ring holds its samples in time order again."""
        self._last: list[tuple[float, float]] = []
        """Per row: (ts, value) of the last sample appended."""

    def append(self, samples: Sequence[Sample]) -> None:
        """Add samples (each signal's in arrival order); BAD values become NaN."""
        rows, only = self._rows, self._only
        watched: Iterable[Sample] = samples
        if only is not None:
            if not only:
                return  # no detector reads a window: skip the walk over every polled sample
            # The watched few (often one link signal per source) picked out in C: 2,000
            # samples cost 125 us per flush walked in Python, 40-75 us like this.
            watched = compress(samples, map(only.__contains__, map(_SIGNAL, samples)))
        ts_rows, value_rows, counts, last = self._ts, self._values, self._count, self._last
        capacity = self.capacity
        for sample in watched:
            row = rows.get(sample.signal)
            if row is None:
                row = self._add(sample.signal)
                ts_rows, value_rows = self._ts, self._values
            ts, value = sample.ts, sample.value
            value = math.nan if value is None else value
            count = counts[row]
            if not ts >= last[row][0]:  # out of time order (or a NaN time)
                # Unordered until this sample and the one before it have left the ring.
                self._ordered_at[row] = count + capacity + 1
            slot = count % capacity
            ts_rows[row, slot] = ts
            value_rows[row, slot] = value
            counts[row] = count + 1
            last[row] = (ts, value)

    def _add(self, signal: str) -> int:
        row = len(self._rows)
        if row == self._ts.shape[0]:
            grown = max(4, 2 * row)
            self._ts = _grow(self._ts, grown)
            self._values = _grow(self._values, grown)
            self._flat = _flat(self._ts), _flat(self._values)
        self._rows[signal] = row
        self._count.append(0)
        self._ordered_at.append(0)
        self._last.append((-math.inf, math.nan))
        return row

    def series(self, signal: str, since: float) -> tuple[np.ndarray, np.ndarray]:
        """Timestamps and values of ``signal`` with ``ts >= since``, in arrival order.

        Returns:
            two float64 arrays of equal length (empty for an unknown signal);
            values are NaN where the sample was BAD.
        """
        row = self._rows.get(signal)
        if row is None:
            return _EMPTY.copy(), _EMPTY.copy()
        if self._count[row] >= self._ordered_at[row]:
            return self._tail_since(row, since)
        ts, values = self._arrival_order(row)
        keep = ts >= since
        if keep.all():
            return ts, values
        return ts[keep], values[keep]

    def latest(self, signal: str) -> tuple[float, float] | None:
        """``(ts, value)`` of the last sample of ``signal`` to arrive (NaN value: BAD)."""
        row = self._rows.get(signal)
        return None if row is None else self._last[row]

    def recent(
        self, signal: str, since: float, most: int = 16
    ) -> tuple[list[float], list[float]] | None:
        """:meth:`series` as lists, read back from the newest sample: for a few samples,
        cheaper than the arrays. None when the newest ``most`` all qualify and the ring
        holds older ones, or it is out of time order: then :meth:`series` is the way."""
        row = self._rows.get(signal)
        if row is None:
            return [], []
        count, capacity = self._count[row], self.capacity
        if count < self._ordered_at[row]:
            return None
        ts, values = self._flat
        base, oldest = row * capacity, max(count - capacity, 0)
        low = max(oldest, count - most)
        j = count - 1
        while j >= low and ts[base + j % capacity] >= since:
            j -= 1
        if j < low and low > oldest:
            return None  # the newest ``most`` all qualify: there may be more
        slots = [base + k % capacity for k in range(j + 1, count)]
        return [ts[k] for k in slots], [values[k] for k in slots]

    def last_at(
        self,
        rows: Sequence[int],
        t: float,
        seen: Sequence[int] | None = None,
        after: float = -math.inf,
        keep: Sequence[float] | None = None,
    ) -> tuple[list[float], list[float], list[int]] | None:
        """Per row (of :meth:`rows`): the time and value of its last sample at or before
        ``t``, and how many samples were ever appended to it.

        A detector that aligned these rows before calls this at its next grid time instead
        of gathering them again: with ``seen`` (the counts it was given then), None also
        unless every sample appended since is newer than ``after``; with ``keep``, None
        unless each row still holds a sample at or before ``keep[i]`` (the oldest it uses).

        Returns:
            times, values (NaN: BAD) and counts; None unless every ring is in time order
            and holds a sample at or before ``t``.
        """
        counts, ordered_at, capacity = self._count, self._ordered_at, self.capacity
        ts, values = self._flat
        out_ts, out_values, out_counts = [], [], []
        for i, row in enumerate(rows):
            count = counts[row]
            if count < ordered_at[row]:
                return None
            base = row * capacity
            low = count - capacity if count > capacity else 0
            # Time order: the first new sample is the oldest of them, and a row's samples are
            # a suffix of what it was given, so its oldest says what was dropped.
            if (
                seen is not None
                and count != seen[i]
                and (seen[i] < low or not ts[base + seen[i] % capacity] > after)
            ):
                return None
            if keep is not None and low and not ts[base + count % capacity] <= keep[i]:
                return None
            j = count - 1
            while j >= low:
                found = ts[base + j % capacity]
                if found <= t:
                    break
                j -= 1
            else:
                return None
            out_ts.append(found)
            out_values.append(values[base + j % capacity])
            out_counts.append(count)
        return out_ts, out_values, out_counts

    def rows(self, signals: Sequence[str]) -> tuple[list[int], list[int]] | None:
        """The rows of ``signals`` for :meth:`tails` and how many samples each holds;
        None unless every one has samples and holds them in time order."""
        found = [self._rows.get(s) for s in signals]
        rows = [r for r in found if r is not None]
        if len(rows) != len(found):
            return None
        counts, ordered_at, capacity = self._count, self._ordered_at, self.capacity
        if any(counts[r] < ordered_at[r] for r in rows):
            return None
        return rows, [min(counts[r], capacity) for r in rows]

    def gather(
        self, signals: Sequence[str], size: int
    ) -> tuple[np.ndarray, np.ndarray, list[int]] | None:
        """:meth:`rows` then :meth:`tails` in one call (a detector's read at every step):
        the newest ``size`` samples of each of ``signals`` and how many each holds; None
        unless every one has samples and holds them in time order (or none is named)."""
        rows_of, counts, ordered_at = self._rows, self._count, self._ordered_at
        capacity = self.capacity
        size = min(size, capacity)
        rows, held, firsts, starts = [], [], [], []
        for signal in signals:
            row = rows_of.get(signal)
            if row is None or counts[row] < ordered_at[row]:
                return None
            count = counts[row]
            first = (count - size) % capacity
            rows.append(row)
            held.append(count if count < capacity else capacity)
            firsts.append(first)
            starts.append(row * capacity + first)
        if not rows:
            return None
        ts, values = self._take(rows, firsts, size, min(held) < size, starts)
        return ts, values, held

    def tails(self, rows: list[int], size: int) -> tuple[np.ndarray, np.ndarray]:
        """The newest ``size`` (at most ``capacity``) samples of each row, oldest first.

        Returns:
            timestamps and values, ``[len(rows), size]`` each; a row holding fewer than
            ``size`` samples is padded in front with NaN timestamps.
        """
        capacity = self.capacity
        size = min(size, capacity)
        firsts = [(self._count[r] - size) % capacity for r in rows]
        return self._take(rows, firsts, size, short=True)

    def _take(
        self,
        rows: list[int],
        firsts: list[int],
        size: int,
        short: bool,
        starts: list[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`tails`, each row from its slot ``firsts[i]`` (``starts``: the same as
        indices of the flat arrays, if known); ``short``: a row may hold fewer than
        ``size`` samples."""
        capacity = self.capacity
        if max(firsts) + size <= capacity:  # no row wraps: one contiguous run per row
            if starts is None:
                starts = [r * capacity + f for r, f in zip(rows, firsts, strict=True)]
            slots = np.array(starts)[:, np.newaxis] + _span(size)
        else:
            slots = (np.array(firsts)[:, np.newaxis] + _span(size)) % capacity
            slots += np.array(rows)[:, np.newaxis] * capacity
        ts, values = self._ts.take(slots), self._values.take(slots)
        for i, row in enumerate(rows if short else ()):
            missing = size - self._count[row]
            if missing > 0:  # slots never written: padding, never samples
                ts[i, :missing] = np.nan
        return ts, values

    def signals(self) -> list[str]:
        """Signals that have at least one sample."""
        return sorted(self._rows)

    def warm(self, store: SignalStore, signals: Iterable[str], since: float) -> None:
        """Fill the rings of ``signals`` from the store's history newer than ``since``.

        Call before appending live samples; a signal already holding samples is
        left alone so nothing is duplicated.
        """
        for signal in signals:
            if signal in self._rows:
                continue
            history = store.history(signal, since)
            if history:
                self.append(history[-self.capacity :])

    def _arrival_order(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        count, capacity = self._count[row], self.capacity
        ts, values = self._ts[row], self._values[row]
        if count <= capacity:
            return ts[:count].copy(), values[:count].copy()
        head = count % capacity
        order = np.r_[head:capacity, 0:head]
        return ts[order], values[order]

    def _tail_since(self, row: int, since: float) -> tuple[np.ndarray, np.ndarray]:
        """The series of a ring in time order: a binary search, then a copy of the tail."""
        count, capacity = self._count[row], self.capacity
        ts, values = self._ts[row], self._values[row]
        head = count % capacity
        if count <= capacity or head == 0:
            end = min(count, capacity)
            start = int(np.searchsorted(ts[:end], since, side="left"))
            return ts[start:end].copy(), values[start:end].copy()
        if not ts[0] >= since:  # every older sample is older still: only the newer part counts
            start = int(np.searchsorted(ts[:head], since, side="left"))
            return ts[start:head].copy(), values[start:head].copy()
        start = head + int(np.searchsorted(ts[head:], since, side="left"))
        return (
            np.concatenate((ts[start:], ts[:head])),
            np.concatenate((values[start:], values[:head])),
        )


def _flat(rows: np.ndarray) -> memoryview[float]:
    """A flat view of a ring array whose items read as Python floats (25 ns, not 50)."""
    return rows.reshape(-1).data.cast("B").cast("d")


@functools.lru_cache(maxsize=16)
def _span(size: int) -> np.ndarray:
    span = np.arange(size)
    span.flags.writeable = False  # shared between calls
    return span


def _grow(rows: np.ndarray, size: int) -> np.ndarray:
    out = np.empty((size, rows.shape[1]), dtype=np.float64)
    out[: rows.shape[0]] = rows
    return out
