"""The outbox's status: backlog per sink and class, counters. Read by the agent and the CLI."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

_KINDS = {0: "alert", 1: "telemetry", 2: "command"}


@dataclass(frozen=True, slots=True)
class Backlog:
    """The backlog of one sink and class."""

    sink: str
    kind: str
    rows: int
    bytes: int
    oldest: float | None


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """What ``edge-agent outbox status`` shows."""

    backlog: list[Backlog]
    counters: dict[str, dict[str, int]] = field(default_factory=dict)

    def rows(self, sink: str, kind: str | None = None) -> int:
        """Rows waiting for ``sink`` (of one kind, or all)."""
        return sum(b.rows for b in self.backlog if b.sink == sink and kind in (None, b.kind))


def read_status(db: sqlite3.Connection) -> OutboxStatus:
    """The status of the outbox behind ``db`` (also used read-only by the CLI)."""
    backlog = [
        Backlog(sink, _KINDS[cls_], rows, size, oldest)
        for sink, cls_, rows, size, oldest in db.execute(
            "SELECT sink, cls, count(*), sum(size), min(created) FROM rows"
            " GROUP BY sink, cls ORDER BY sink, cls"
        )
    ]
    counters: dict[str, dict[str, int]] = {}
    for sink, name, value in db.execute(
        "SELECT sink, name, value FROM counters WHERE name != 'seq' ORDER BY 1, 2"
    ):
        counters.setdefault(sink, {})[name] = value
    return OutboxStatus(backlog, counters)


def open_readonly(path: Path) -> sqlite3.Connection:
    """Open an existing outbox file for reading (another process may be writing)."""
    if not path.exists():
        raise FileNotFoundError(f"no outbox at {path}")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
