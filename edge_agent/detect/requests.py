"""Operator requests on open alerts (acknowledge, shelve, unshelve), queued in the outbox file.

``edge-agent alerts ack|shelve|unshelve`` runs beside the agent without its
secrets and without a connection to it: it appends a row to ``alert_requests``
in the outbox file (the data folder) and returns. The agent creates that table when
it opens the outbox file, so its poll never queries a table that is not there. The
running agent's detector loop takes pending rows at most once a second, applies each
to the alert's tracker (each becomes an alert event upstream, stored with the alert
events), and only then marks it done with a one-line result. Applying a request twice
changes nothing (an acknowledged alert stays acknowledged; a shelve carries its
absolute end), so a crash between the two leaves no duplicate event.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from edge_agent.forward.alert_state import REQUESTS_SCHEMA

ACTIONS = ("ack", "shelve", "unshelve")

SCHEMA = REQUESTS_SCHEMA


@dataclass(frozen=True, slots=True)
class Request:
    """One operator request: ``action`` on the open alert ``alert`` (id or unique prefix)."""

    n: int
    ts: float
    action: str
    alert: str
    until: float = 0.0
    by: str = ""


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the outbox file that waits for the agent's writes."""
    db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout = 10000")
    return db


def submit(db: sqlite3.Connection, action: str, alert: str, until: float, by: str) -> int:
    """Queue one request; returns its number."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    db.executescript(SCHEMA)
    cur = db.execute(
        "INSERT INTO alert_requests (ts, action, alert, until, by) VALUES (?, ?, ?, ?, ?)",
        (time.time(), action, alert, until, by),
    )
    return int(cur.lastrowid or 0)


def pending(db: sqlite3.Connection) -> list[Request]:
    """Requests not yet applied, oldest first.

    The table is created with the outbox file (:meth:`Outbox.open
    <edge_agent.forward.outbox.Outbox.open>`), so a missing one is an error here.
    """
    rows = db.execute(
        "SELECT n, ts, action, alert, until, by FROM alert_requests WHERE done IS NULL ORDER BY n"
    ).fetchall()
    return [Request(int(n), float(ts), a, alert, float(u), by) for n, ts, a, alert, u, by in rows]


def finish(db: sqlite3.Connection, results: list[tuple[int, str]]) -> None:
    """Mark requests applied, each with its result line."""
    now = time.time()
    db.executemany(
        "UPDATE alert_requests SET done = ?, result = ? WHERE n = ?",
        [(now, result, n) for n, result in results],
    )


def result(db: sqlite3.Connection, n: int) -> str | None:
    """The result of request ``n``, None while it is pending."""
    row = db.execute("SELECT done, result FROM alert_requests WHERE n = ?", (n,)).fetchone()
    return None if row is None or row[0] is None else str(row[1])
