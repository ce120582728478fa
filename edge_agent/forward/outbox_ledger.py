"""The outbox's books: each sink's backlog by class, its persisted counters, and its bound.

Bounds (``max_rows``, ``max_size``) apply to each sink's backlog. When a put goes
over, rows are dropped in this order until it fits:

1. telemetry, oldest first (alerts are never dropped to make room for telemetry);
2. audit events of commands, oldest first (the journal keeps a line of each);
3. cleared alerts, oldest first (their raise is what an operator acts on);
4. raised alerts, oldest first (only when alerts alone exceed the bound).

Rows of the batch in flight are never dropped. Each drop is counted in the
``counters`` table (``dropped_<class>``), so the count survives a restart.

The :class:`Ledger` writes through the outbox's connection, inside the outbox's
transaction: it never begins or commits one itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Set

from edge_agent.forward.config import OutboxConfig
from edge_agent.forward.outbox_rows import ALERT, CLASSES, COMMAND, TELEMETRY
from edge_agent.types import AlertState

DROP_ORDER = (
    (TELEMETRY, None, "telemetry"),
    (COMMAND, None, "command audit events"),
    (ALERT, str(AlertState.CLEARED), "cleared alerts"),
    (ALERT, None, "alerts"),
)
"""(class, state or None for any, label in the log): what a full backlog gives up first."""


class Ledger:
    """Rows and bytes per (sink, class) and the per-sink counters, mirrored in memory.

    Args:
        db: the outbox's connection (writes happen in the outbox's transaction).
        config: the bounds.

    Attributes:
        usage: (sink, class) -> [rows, bytes], bytes including the per-row overhead
            (:data:`~edge_agent.forward.outbox_rows.ROW_OVERHEAD`).
        counters: (sink, name) -> value, as in the ``counters`` table.
    """

    def __init__(self, db: sqlite3.Connection, config: OutboxConfig) -> None:
        self._db = db
        self.config = config
        self.usage: dict[tuple[str, int], list[int]] = {}
        self.counters: dict[tuple[str, str], int] = {}

    def load(self) -> None:
        """Sizes and counters from the file (at open, and after a rolled-back write)."""
        self.usage = {
            (sink, cls_): [rows, size]
            for sink, cls_, rows, size in self._db.execute(
                "SELECT sink, cls, count(*), sum(size) FROM rows GROUP BY sink, cls"
            )
        }
        self.counters = {
            (sink, name): value
            for sink, name, value in self._db.execute("SELECT sink, name, value FROM counters")
        }

    def value(self, sink: str, name: str) -> int:
        """A counter of ``sink`` (0 before its first write)."""
        return self.counters.get((sink, name), 0)

    def added(self, sink: str, cls_: int, size: int) -> None:
        """Account one inserted row of ``size`` bytes (overhead included)."""
        usage = self.usage.setdefault((sink, cls_), [0, 0])
        usage[0] += 1
        usage[1] += size

    def delete(self, sink: str, cls_: int, rows: list[tuple[int, int]]) -> None:
        """Delete rows (``(id, size)``) of one class of ``sink`` and account them."""
        if not rows:
            return
        self._db.executemany("DELETE FROM rows WHERE id = ?", [(r,) for r, _ in rows])
        usage = self.usage.setdefault((sink, cls_), [0, 0])
        usage[0] -= len(rows)
        usage[1] -= sum(size for _, size in rows)

    def set(self, sink: str, name: str, value: int) -> None:
        """Set a counter of ``sink``."""
        self._db.execute(
            "INSERT OR REPLACE INTO counters (sink, name, value) VALUES (?, ?, ?)",
            (sink, name, value),
        )
        self.counters[(sink, name)] = value

    def count(self, sink: str, name: str, n: int) -> None:
        """Add ``n`` to a counter of ``sink`` (nothing when ``n`` is not positive)."""
        if n <= 0:
            return
        self._db.execute(
            "INSERT INTO counters (sink, name, value) VALUES (?, ?, ?)"
            " ON CONFLICT (sink, name) DO UPDATE SET value = value + excluded.value",
            (sink, name, n),
        )
        self.counters[(sink, name)] = self.value(sink, name) + n

    def enforce(self, sink: str, inflight: Set[int]) -> dict[str, int]:
        """Drop rows of ``sink`` until it fits its bound; returns counts by label.

        Args:
            sink: the sink whose backlog just grew.
            inflight: row ids of the batch in flight (never dropped).
        """
        dropped: dict[str, int] = {}
        for cls_, state, label in DROP_ORDER:
            rows_over, bytes_over = self._excess(sink)
            if rows_over <= 0 and bytes_over <= 0:
                break
            count = self._evict(sink, (cls_, state), inflight, (rows_over, bytes_over))
            if count:
                dropped[label] = count
        return dropped

    def _excess(self, sink: str) -> tuple[int, int]:
        rows = sum(self.usage.get((sink, c), [0, 0])[0] for c in CLASSES)
        size = sum(self.usage.get((sink, c), [0, 0])[1] for c in CLASSES)
        return rows - self.config.max_rows, size - self.config.max_size

    def _evict(
        self,
        sink: str,
        kind: tuple[int, str | None],
        inflight: Set[int],
        over: tuple[int, int],
    ) -> int:
        """Delete the oldest rows of one class until ``over`` (rows, bytes) are freed."""
        cls_, state = kind
        rows_over, bytes_over = over
        sql = "SELECT id, size FROM rows WHERE sink = ? AND cls = ? AND id > ?"
        sql += " AND state = ?" if state else ""
        sql += " ORDER BY id LIMIT 256"
        victims: list[tuple[int, int]] = []
        freed, last = 0, 0
        while len(victims) < rows_over or freed < bytes_over:
            args = (sink, cls_, last, state) if state else (sink, cls_, last)
            chunk = self._db.execute(sql, args).fetchall()
            if not chunk:
                break
            for row_id, size in chunk:
                last = row_id
                if row_id in inflight:
                    continue
                victims.append((row_id, size))
                freed += size
                if len(victims) >= rows_over and freed >= bytes_over:
                    break
        self.delete(sink, cls_, victims)
        self.count(sink, f"dropped_{CLASSES[cls_]}", len(victims))
        return len(victims)
