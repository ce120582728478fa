"""In-memory windows: a numpy ring of recent samples per signal, for the detectors.

Appending is O(1) per sample and never allocates; :meth:`Windows.series` copies
the ring out in arrival order. BAD samples are kept as NaN so a detector sees
the gap. At start the rings are warmed from the twin's SQLite history so a
restart does not leave the models blind for a whole window.
"""

from __future__ import annotations

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


class _Ring:
    """Timestamps and values of one signal; ``count`` samples ever appended."""

    __slots__ = ("count", "ts", "values")

    def __init__(self, capacity: int) -> None:
        self.ts = np.empty(capacity, dtype=np.float64)
        self.values = np.empty(capacity, dtype=np.float64)
        self.count = 0

    def push(self, ts: float, value: float) -> None:
        i = self.count % self.ts.shape[0]
        self.ts[i] = ts
        self.values[i] = value
        self.count += 1

    def ordered(self) -> tuple[np.ndarray, np.ndarray]:
        capacity = self.ts.shape[0]
        if self.count <= capacity:
            return self.ts[: self.count].copy(), self.values[: self.count].copy()
        head = self.count % capacity
        order = np.r_[head:capacity, 0:head]
        return self.ts[order], self.values[order]


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
        self._rings: dict[str, _Ring] = {}

    def append(self, samples: Sequence[Sample]) -> None:
        """Add samples (each signal's in arrival order); BAD values become NaN."""
        rings, only = self._rings, self._only
        watched: Iterable[Sample] = samples
        if only is not None:
            if not only:
                return  # no detector reads a window: skip the walk over every polled sample
            # The watched few (often one link signal per source) picked out in C: 2,000
            # samples cost 125 us per flush walked in Python, 40-75 us like this.
            watched = compress(samples, map(only.__contains__, map(_SIGNAL, samples)))
        for sample in watched:
            ring = rings.get(sample.signal)
            if ring is None:
                ring = rings[sample.signal] = _Ring(self.capacity)
            ring.push(sample.ts, np.nan if sample.value is None else sample.value)

    def series(self, signal: str, since: float) -> tuple[np.ndarray, np.ndarray]:
        """Timestamps and values of ``signal`` with ``ts >= since``, oldest first.

        Returns:
            two float64 arrays of equal length (empty for an unknown signal);
            values are NaN where the sample was BAD.
        """
        ring = self._rings.get(signal)
        if ring is None:
            return _EMPTY.copy(), _EMPTY.copy()
        ts, values = ring.ordered()
        keep = ts >= since
        if keep.all():
            return ts, values
        return ts[keep], values[keep]

    def signals(self) -> list[str]:
        """Signals that have at least one sample."""
        return sorted(self._rings)

    def warm(self, store: SignalStore, signals: Iterable[str], since: float) -> None:
        """Fill the rings of ``signals`` from the store's history newer than ``since``.

        Call before appending live samples; a signal already holding samples is
        left alone so nothing is duplicated.
        """
        for signal in signals:
            if signal in self._rings:
                continue
            history = store.history(signal, since)
            if history:
                self.append(history[-self.capacity :])
