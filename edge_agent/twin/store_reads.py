"""The edge twin's reads: latest values, the catalogue, raw history and minute rollups.

:class:`StoreReads` holds the read side of :class:`~edge_agent.twin.store.SignalStore`,
which inherits it; ``store.py`` keeps the layout, the write path and the pruning. The
reads run where the store lives (the agent's DB worker, or a read-only store opened by
the CLI) and write nothing. The SQL is in :mod:`edge_agent.twin.queries`; what is here
is which rows to ask for: slots, the ``max_age`` horizon, the minutes still in memory.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from edge_agent.twin import queries
from edge_agent.twin.config import MINUTE, TwinConfig
from edge_agent.twin.rollups import Rollup, combine
from edge_agent.twin.signal_status import SignalStatus, signal_status
from edge_agent.types import Sample, SignalInfo

if TYPE_CHECKING:
    from edge_agent.twin.rollup_buffer import RollupBuffer


class StoreReads:
    """The store's reads; the state they read is set up by ``SignalStore``."""

    _conn: sqlite3.Connection
    config: TwinConfig
    readonly: bool
    clock: Callable[[], float]
    _slots: int
    _ids: dict[str, int]
    _infos: dict[int, SignalInfo]
    _seq: np.ndarray
    _latest: dict[str, Sample]
    _rollups: RollupBuffer

    def latest(self) -> dict[str, Sample]:
        """The newest sample held for each signal."""
        return dict(self._latest)

    def status(self, now: float | None = None) -> list[SignalStatus]:
        """The latest-value view: every catalogued signal with age and staleness."""
        now = self.clock() if now is None else now
        return signal_status(self._infos.values(), self._latest, now, self.config.stale_factor)

    def signals(self) -> list[SignalInfo]:
        """The catalogue, sorted by name."""
        return sorted(self._infos.values(), key=lambda info: info.signal)

    def history(self, signal: str, since: float, until: float | None = None) -> list[Sample]:
        """Raw samples of ``signal`` with ``since <= ts <= until``, oldest first.

        Samples older than ``max_age`` are never returned.
        """
        sid = self._ids.get(signal)
        if sid is None or self._seq[sid] == 0:
            return []
        window = (max(since, self.clock() - self.config.max_age), 1e300 if until is None else until)
        count = int(self._seq[sid])
        return queries.read_history(self._conn, signal, sid, count, self._slots, window)

    def rollups(self, signal: str, since: float, until: float | None = None) -> list[Rollup]:
        """Minute rollups of ``signal`` whose minute starts in ``[since, until]``."""
        sid = self._ids.get(signal)
        if sid is None:
            return []
        now = self.clock()
        last = math.floor((now if until is None else until) / MINUTE)
        slots = self._rollups.slots
        first = max(
            math.ceil(since / MINUTE),
            last - slots + 1,
            math.ceil((now - self.config.rollup_max_age) / MINUTE),
        )
        result = queries.read_rollups(self._conn, sid, first, last, slots)
        current = None if self.readonly else self._rollups.open_rollup(sid)
        if current is not None and first * MINUTE <= current.ts <= last * MINUTE:
            result = [r for r in result if r.ts != current.ts] + [current]
        return result

    def window_rollups(self, start: float, end: float) -> dict[str, Rollup]:
        """Every signal's minute rollups over ``[start, end)`` combined into one (``ts = start``).

        ``start`` and ``end`` are taken to be whole minutes (telemetry windows of
        whole minutes). Reads the stored minutes by row id range, then the open
        minutes and the closed ones not yet written from memory.
        """
        first, last = math.floor(start / MINUTE), math.floor(end / MINUTE)
        rows = queries.read_minutes(self._conn, first, last, self._rollups.slots)
        if not self.readonly:
            rows += self._rollups.open_rows(first, last)
        names = {sid: info.signal for sid, info in self._infos.items()}
        return {names[sid]: r for sid, r in combine(rows, start).items() if sid in names}
