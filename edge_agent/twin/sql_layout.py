"""The twin's file: connection and pragmas, tables, meta values, and reshaping.

Tables (see :mod:`edge_agent.twin.store` for why the rings use fixed slots)::

    meta(key, value)            version, slots, rollup_slots, heads (int64 blob), watermark
    signals(id, name, source, asset, unit, description, interval)
    samples(id, ts, value, quality)        id = (seq % slots) << 20 | signal id
    rollups(id, minute, min, max, sum, last, last_ts, count, bad)
                                           id = (minute % rollup_slots) << 20 | signal id
"""

from __future__ import annotations

import fcntl
import sqlite3
from pathlib import Path
from typing import IO, Any

import numpy as np

from edge_agent.twin.rollups import SIGNAL_BITS, SIGNAL_MASK

VERSION = 1
JOURNAL_SIZE_LIMIT = 8 * 1024 * 1024
"""Bytes the WAL is truncated back to after a checkpoint: bounds the -wal file."""
BUSY_TIMEOUT_MS = 5000

DDL = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS signals (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
        asset TEXT NOT NULL, unit TEXT NOT NULL, description TEXT NOT NULL,
        interval REAL NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS samples (id INTEGER PRIMARY KEY, ts REAL, value REAL, quality INT)",
    """CREATE TABLE IF NOT EXISTS rollups (
        id INTEGER PRIMARY KEY, minute INT, min REAL, max REAL, sum REAL, last REAL,
        last_ts REAL, count INT, bad INT)""",
)


def connect(
    path: Path, synchronous: str, readonly: bool, max_size: int | None
) -> sqlite3.Connection:
    """Open the file in WAL mode with the given ``synchronous`` level.

    The connection may be used from another thread than the one that opened it
    (the agent's single DB worker), never from two at once.
    """
    if readonly:
        uri = f"file:{path.resolve()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    if max_size is not None:
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        conn.execute(f"PRAGMA max_page_count = {max(max_size // page_size, 2)}")
    return conn


def lock_writer(path: Path) -> IO[bytes]:
    """Hold ``<path>.lock`` exclusively while a writer has the file open.

    Two writers would each keep their own ring heads and overwrite each other's
    slots. The kernel drops the lock when the process dies, even by ``kill -9``.

    Raises:
        BlockingIOError: another process holds it.
    """
    handle = path.with_name(path.name + ".lock").open("a+b")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        handle.close()
        raise
    return handle


def create(conn: sqlite3.Connection, slots: int, rollup_slots: int) -> None:
    """Create the tables and meta values of a new file (no-op on an existing one)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in DDL:
            conn.execute(statement)
        defaults: dict[str, Any] = {
            "version": VERSION,
            "slots": slots,
            "rollup_slots": rollup_slots,
            "heads": b"",
        }
        conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", list(defaults.items()))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def read_meta(conn: sqlite3.Connection) -> dict[str, Any]:
    """All meta values."""
    return dict(conn.execute("SELECT key, value FROM meta").fetchall())


HEADS_DTYPE = np.dtype("<i8")


def heads_from_blob(blob: bytes | None) -> np.ndarray:
    """Samples ever written per signal id, from the ``heads`` meta blob (little-endian int64)."""
    return np.frombuffer(blob or b"", dtype=HEADS_DTYPE).astype(np.int64)


def reshape_ring(conn: sqlite3.Connection, heads: np.ndarray, old: int, new: int) -> None:
    """Move the newest ``min(old, new)`` samples of each signal to a ring of ``new`` slots.

    Sequence numbers stay, so the heads stay valid. Runs in one transaction.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TEMP TABLE moves (old INTEGER PRIMARY KEY, new INT)")
        conn.executemany("INSERT INTO moves VALUES (?, ?)", _moves(heads, old, new))
        conn.execute(
            "CREATE TABLE samples_new (id INTEGER PRIMARY KEY, ts REAL, value REAL, quality INT)"
        )
        conn.execute(
            "INSERT INTO samples_new SELECT m.new, s.ts, s.value, s.quality "
            "FROM moves m JOIN samples s ON s.id = m.old"
        )
        conn.execute("DROP TABLE samples")
        conn.execute("ALTER TABLE samples_new RENAME TO samples")
        conn.execute("DROP TABLE moves")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'slots'", (new,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _moves(heads: np.ndarray, old: int, new: int) -> list[tuple[int, int]]:
    moves = []
    for sid, count in enumerate(heads.tolist()):
        for seq in range(count - min(count, old, new), count):
            moves.append(((seq % old) << SIGNAL_BITS | sid, (seq % new) << SIGNAL_BITS | sid))
    return moves


def reshape_rollups(conn: sqlite3.Connection, new: int) -> None:
    """Re-slot the rollups for a ring of ``new`` minutes, keeping the newest minutes."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(DDL[3].replace("IF NOT EXISTS rollups", "rollups_new"))
        conn.execute(
            f"INSERT OR REPLACE INTO rollups_new SELECT ((minute % ?) << {SIGNAL_BITS}) | "
            f"(id & {SIGNAL_MASK}), minute, min, max, sum, last, last_ts, count, bad "
            "FROM rollups ORDER BY minute",
            (new,),
        )
        conn.execute("DROP TABLE rollups")
        conn.execute("ALTER TABLE rollups_new RENAME TO rollups")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'rollup_slots'", (new,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
