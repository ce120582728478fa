"""Alert state kept where the alert events live: in the outbox file, in the same transaction.

The outbox stores each raise and clear as rows for the sinks. In the same SQLite
transaction this module records which alerts are open (``open_alerts``: one row per
asset and cause) and appends the event to a bounded log (``alert_log``). A crash,
a watchdog kill or a power cut therefore leaves the open set and the queued events
consistent: a raise that was stored is open after the restart (and is cleared under
its own id when its condition has ended); a clear that was stored is never restored
as open. ``edge-agent alerts`` and the site view read the same two tables.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from edge_agent.types import Alert, AlertState

LOG_ROWS = 10_000
"""Alert events the log keeps (oldest dropped first): months of a busy site's history."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS open_alerts (
    asset TEXT NOT NULL, cause TEXT NOT NULL, id TEXT NOT NULL,
    raised REAL NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (asset, cause)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_log (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL, asset TEXT NOT NULL, cause TEXT NOT NULL, state TEXT NOT NULL,
    ts REAL NOT NULL, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_log_id ON alert_log (id);
"""

REQUESTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_requests (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL, action TEXT NOT NULL, alert TEXT NOT NULL,
    until REAL NOT NULL DEFAULT 0, by TEXT NOT NULL DEFAULT '',
    done REAL, result TEXT
);
"""
"""The operators' request queue (:mod:`edge_agent.detect.requests`), created with the
outbox file at the agent's start: the detector loop's poll of it then never runs a
query on a table that does not exist yet."""


def record(db: sqlite3.Connection, alerts: Sequence[Alert]) -> None:
    """Apply raise/clear events to the open set and the log; call inside the put transaction.

    Events of one batch are applied in order, so a raise and its clear in the same
    batch leave nothing open.
    """
    for alert in alerts:
        body = json.dumps(alert.to_dict(), separators=(",", ":"))
        if alert.state is AlertState.RAISED:
            db.execute(
                "INSERT OR REPLACE INTO open_alerts (asset, cause, id, raised, body)"
                " VALUES (?, ?, ?, ?, ?)",
                (alert.asset, alert.cause, alert.id, alert.window_end, body),
            )
        elif alert.state is AlertState.CLEARED:
            db.execute(
                "DELETE FROM open_alerts WHERE asset = ? AND cause = ? AND id = ?",
                (alert.asset, alert.cause, alert.id),
            )
        else:  # an update of an open alert (severity, acknowledgement): keep it current
            db.execute(
                "UPDATE open_alerts SET body = ? WHERE asset = ? AND cause = ? AND id = ?",
                (body, alert.asset, alert.cause, alert.id),
            )
        db.execute(
            "INSERT INTO alert_log (id, asset, cause, state, ts, body) VALUES (?, ?, ?, ?, ?, ?)",
            (alert.id, alert.asset, alert.cause, str(alert.state), alert.window_end, body),
        )
    if alerts:
        db.execute(
            "DELETE FROM alert_log WHERE n <= (SELECT max(n) FROM alert_log) - ?", (LOG_ROWS,)
        )


def replay(open_now: Sequence[Alert], events: Sequence[Alert]) -> list[Alert]:
    """The open set after ``events``, as :func:`record` leaves it once they are stored.

    For events not stored yet (held in memory while the outbox refuses): a detector
    that takes over the open alerts then sees them as the outbox will.
    """
    state = {(a.asset, a.cause): (a.window_end, a) for a in open_now}
    for event in events:
        key = (event.asset, event.cause)
        held = state.get(key)
        if event.state is AlertState.RAISED:
            state[key] = (event.window_end, event)
        elif held is not None and held[1].id == event.id:
            if event.state is AlertState.CLEARED:
                del state[key]
            else:  # an update keeps its raise time
                state[key] = (held[0], event)
    ordered = sorted(state.items(), key=lambda item: (item[1][0], item[0]))
    return [alert for _, (_, alert) in ordered]


def open_alerts(db: sqlite3.Connection) -> list[Alert]:
    """The raise events of every alert open now, oldest raise first."""
    rows = db.execute("SELECT body FROM open_alerts ORDER BY raised, asset, cause").fetchall()
    return [_alert(body) for (body,) in rows]


def history(db: sqlite3.Connection, limit: int = 100, since: float = 0.0) -> list[Alert]:
    """The latest ``limit`` alert events at or after ``since``, newest first."""
    rows = db.execute(
        "SELECT body FROM alert_log WHERE ts >= ? ORDER BY n DESC LIMIT ?", (since, limit)
    ).fetchall()
    return [_alert(body) for (body,) in rows]


def has_history(db: sqlite3.Connection) -> bool:
    """True once any alert event was recorded in this file."""
    return db.execute("SELECT 1 FROM alert_log LIMIT 1").fetchone() is not None


def _alert(body: str) -> Alert:
    return Alert.from_dict(json.loads(body))
