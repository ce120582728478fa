"""The outbox file's rows: their classes, the schema, the record a sink is given."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

ALERT, TELEMETRY, COMMAND = 0, 1, 2


NOTICE = "notice"  # the state of a notice row (class ALERT: delivered first, dropped last)


PROGNOSIS = "prognosis"  # the state of a prognosis row (class TELEMETRY: periodic, dropped first)


# in the order take() serves them: audit events of commands right after alerts
CLASSES = {ALERT: "alert", COMMAND: "command", TELEMETRY: "telemetry"}


ROW_OVERHEAD = 64  # bytes of SQLite bookkeeping per row, counted so the bound means disk


SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL, cls INTEGER NOT NULL, state TEXT NOT NULL,
    gateway TEXT NOT NULL, asset TEXT NOT NULL,
    ts REAL NOT NULL, created REAL NOT NULL, size INTEGER NOT NULL, body BLOB NOT NULL,
    seq INTEGER
);
CREATE INDEX IF NOT EXISTS rows_take ON rows (sink, cls, id);
CREATE TABLE IF NOT EXISTS counters (
    sink TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (sink, name)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Record:
    """One message taken from the outbox for a sink.

    Attributes:
        row: the outbox row id (0 for a notice, which is no row).
        kind: ``alert``, ``command`` (audit event), ``telemetry``, ``prognosis`` or ``notice``.
        gateway: the gateway id the message is from.
        asset: the asset it concerns ("" when none).
        body: the encoded JSON payload (see :mod:`edge_agent.forward.encode`).
        size: bytes the row counts against the bound.
        cls: priority class (0 alert, 2 command, 1 telemetry; -1 notice).
    """

    row: int
    kind: str
    gateway: str
    asset: str
    body: bytes
    size: int = 0
    cls: int = -1


def add_seq_column(db: sqlite3.Connection) -> None:
    """Files from before per-sink sequence numbers: old rows keep their row id as seq."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(rows)")}
    if "seq" in columns:
        return
    db.execute("ALTER TABLE rows ADD COLUMN seq INTEGER")
    db.execute("UPDATE rows SET seq = id")
    db.execute(
        "INSERT OR REPLACE INTO counters (sink, name, value)"
        " SELECT sink, 'seq', max(id) FROM rows GROUP BY sink"
    )
