"""Reads, writes and deletes on the twin's tables; row ids are computed in SQL or numpy.

Reads walk a signal's slots with a recursive CTE (point lookups by row id), so a
query touches only that signal's rows even though the rows of one flush are
stored next to each other.
"""

from __future__ import annotations

import math
import sqlite3

import numpy as np

from edge_agent.twin.rollups import SIGNAL_BITS, SIGNAL_MASK, Rollup, RollupRow, rollup_from_row
from edge_agent.types import Quality, Sample, SignalInfo

QUALITY_CODE = {Quality.GOOD: 0, Quality.UNCERTAIN: 1, Quality.BAD: 2}
QUALITY_OF_CODE = (Quality.GOOD, Quality.UNCERTAIN, Quality.BAD)
RingColumns = tuple[list[int], list[float], list[float | None], list[int]]
"""Row ids, timestamps, values and quality codes of the ring rows of one write."""

RING_SQL = "INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?)"
RING_CHUNK = 500
"""Rows per multi-row INSERT: 2,000 bound values, under SQLite's limit of 32,766."""
_RING_MANY = "INSERT OR REPLACE INTO samples VALUES " + ", ".join(["(?, ?, ?, ?)"] * RING_CHUNK)
# Walks one signal's ring backwards from its newest slot and stops at the first
# sample older than :since (one row past it): cost follows the window, not the ring.
_HISTORY_SQL = f"""
WITH RECURSIVE j(x, ts, value, quality) AS (
  SELECT :hi - 1, ts, value, quality FROM samples
  WHERE id = (((:hi - 1) % :slots) << {SIGNAL_BITS}) | :sid
  UNION ALL
  SELECT j.x - 1, s.ts, s.value, s.quality FROM j
  JOIN samples s ON s.id = (((j.x - 1) % :slots) << {SIGNAL_BITS}) | :sid
  WHERE j.x - 1 >= :lo AND j.ts >= :since
)
SELECT ts, value, quality FROM j WHERE ts >= :since AND ts <= :until ORDER BY x"""
_ROLLUPS_SQL = f"""
WITH RECURSIVE m(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM m WHERE x + 1 <= ?)
SELECT r.minute, r.min, r.max, r.sum, r.last, r.count, r.bad
FROM m JOIN rollups r ON r.id = ((m.x % ?) << {SIGNAL_BITS}) | ? AND r.minute = m.x
ORDER BY m.x"""
_MINUTE_SQL = "SELECT * FROM rollups WHERE id >= ? AND id <= ? AND minute = ?"
_CATALOGUE_SQL = "SELECT id, name, source, asset, unit, description, interval FROM signals"
_CATALOGUE_ROW = "(?, ?, ?, ?, ?, ?, ?)"
CATALOGUE_CHUNK = 250
"""Catalogue rows per multi-row INSERT: 1,750 bound values."""


def ring_slots(heads: np.ndarray, sid: np.ndarray, slots: int) -> np.ndarray:
    """Ring slots of a batch's samples, in order; advances ``heads`` in place.

    Args:
        heads: samples ever written per signal id.
        sid: the signal id of each sample of the batch, in arrival order.
        slots: ring size.
    """
    counts = np.bincount(sid, minlength=heads.size)
    base = heads[sid]
    if counts.max() > 1:  # a signal more than once: number its samples 0, 1, 2...
        order = np.argsort(sid, kind="stable")
        ranked = sid[order]
        index = np.arange(sid.size)
        first = np.maximum.accumulate(np.where(np.r_[True, ranked[1:] != ranked[:-1]], index, 0))
        rank = np.empty_like(index)
        rank[order] = index - first
        base = base + rank
    heads += counts
    result: np.ndarray = base % slots
    return result


def compact_slots(
    heads: np.ndarray, runs: np.ndarray, sid: np.ndarray, bad: np.ndarray, slots: int
) -> np.ndarray:
    """Like :func:`ring_slots`, but a run of BAD samples takes at most two slots.

    A BAD sample that follows two or more BAD samples of its signal overwrites
    the newest one instead of taking a new slot: the ring keeps the run's first
    and newest samples and the GOOD history before them. ``runs`` (BAD samples at
    the head of each signal, capped at 2) is updated in place like ``heads``.
    """
    if not np.count_nonzero(bad) and not np.count_nonzero(runs):  # the usual flush: 2 C calls
        return ring_slots(heads, sid, slots)
    involved = np.union1d(sid[bad], runs.nonzero()[0])
    slow = np.isin(sid, involved)  # the signals in or near a BAD run: one sample at a time
    out = np.empty(sid.size, dtype=np.int64)
    out[~slow] = ring_slots(heads, sid[~slow], slots)
    picked = np.flatnonzero(slow)
    for i, s, is_bad in zip(picked.tolist(), sid[slow].tolist(), bad[slow].tolist(), strict=True):
        if is_bad and runs[s] >= 2:
            out[i] = (heads[s] - 1) % slots
            continue
        out[i] = heads[s] % slots
        heads[s] += 1
        runs[s] = runs[s] + 1 if is_bad else 0
    return out


def write_ring(conn: sqlite3.Connection, ring: RingColumns) -> None:
    """Write ring rows in arrival order (a later row for the same slot wins).

    Multi-row INSERTs of :data:`RING_CHUNK` rows: 0.22 us of CPU per row against
    0.72 for ``executemany`` (100,000 rows, SQLite 3.40, BENCHMARKS.md "Where the
    time goes"), and the worker thread hands the GIL to the event loop once per
    chunk rather than once per row. One parameter list of a chunk's size is filled
    again for each chunk: a list for the whole batch (640 KB at 20,000 samples, its
    size following the batch's) made the soak's C heap grow in rare steps of that
    size (BENCHMARKS.md, *The soak, third look*).
    """
    ids, stamps, values, codes = ring
    count = len(ids)
    full = count - count % RING_CHUNK
    flat: list[float | None] = [None] * (4 * RING_CHUNK)
    for start in range(0, full, RING_CHUNK):
        end = start + RING_CHUNK
        flat[0::4], flat[1::4] = ids[start:end], stamps[start:end]
        flat[2::4], flat[3::4] = values[start:end], codes[start:end]
        conn.execute(_RING_MANY, flat)  # bound and run here: the list is free again after
    if full < count:
        conn.executemany(RING_SQL, zip(*(column[full:] for column in ring), strict=True))


def read_catalogue(conn: sqlite3.Connection) -> list[tuple[int, SignalInfo]]:
    """Every catalogue entry with its signal id."""
    return [
        (sid, SignalInfo(name, source, interval, asset, unit, description))
        for sid, name, source, asset, unit, description, interval in conn.execute(_CATALOGUE_SQL)
    ]


def write_catalogue(conn: sqlite3.Connection, entries: list[tuple[int, SignalInfo]]) -> None:
    """Insert or update catalogue entries, up to :data:`CATALOGUE_CHUNK` in a statement.

    A fresh twin registers every signal at the start: 10,000 rows took 21 ms one
    by one (``executemany``), about 12 ms this way.
    """
    for start in range(0, len(entries), CATALOGUE_CHUNK):
        part = entries[start : start + CATALOGUE_CHUNK]
        sql = "INSERT OR REPLACE INTO signals VALUES " + ", ".join([_CATALOGUE_ROW] * len(part))
        conn.execute(sql, [
            value
            for sid, i in part
            for value in (sid, i.signal, i.source, i.asset, i.unit, i.description, i.interval)
        ])  # fmt: skip


def read_latest(
    conn: sqlite3.Connection, heads: np.ndarray, slots: int, names: dict[int, str]
) -> dict[str, Sample]:
    """The newest sample of each signal in ``names``, from its head slot."""
    wanted = {
        ((n - 1) % slots) << SIGNAL_BITS | sid: names[sid]
        for sid, n in enumerate(heads.tolist())
        if n > 0 and sid in names
    }
    ids = list(wanted)
    latest = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        sql = (
            f"SELECT id, ts, value, quality FROM samples WHERE id IN ({','.join('?' * len(chunk))})"
        )
        for row_id, ts, value, quality in conn.execute(sql, chunk):
            name = wanted[row_id]
            latest[name] = Sample(name, ts, value, QUALITY_OF_CODE[quality])
    return latest


def read_minutes(conn: sqlite3.Connection, first: int, last: int, slots: int) -> list[RollupRow]:
    """Every stored rollup row of minutes ``first..last - 1``, all signals (row id ranges)."""
    rows: list[RollupRow] = []
    for minute in range(max(first, last - slots), last):
        lo = (minute % slots) << SIGNAL_BITS
        rows += conn.execute(_MINUTE_SQL, (lo, lo + SIGNAL_MASK, minute)).fetchall()
    return rows


def read_recent(conn: sqlite3.Connection, since: float) -> tuple[np.ndarray, ...]:
    """Signal ids, timestamps and values (NaN for BAD) of every sample at or after ``since``."""
    rows = conn.execute("SELECT id, ts, value FROM samples WHERE ts >= ?", (since,)).fetchall()
    table = np.array(rows, dtype=np.float64).reshape(-1, 3)  # NULL values become NaN
    return table[:, 0].astype(np.int64) & SIGNAL_MASK, table[:, 1].copy(), table[:, 2].copy()


def read_history(
    conn: sqlite3.Connection,
    signal: str,
    sid: int,
    count: int,
    slots: int,
    window: tuple[float, float],
) -> list[Sample]:
    """Samples of one signal in arrival order, with ``window[0] <= ts <= window[1]``.

    The walk back from the newest sample stops at the first one older than
    ``window[0]``: each signal's timestamps are taken to rise in arrival order
    (a device clock that jumps back hides what came before the jump).
    """
    params = {
        "hi": count,
        "lo": max(0, count - slots),
        "slots": slots,
        "sid": sid,
        "since": window[0],
        "until": window[1],
    }
    return [
        Sample(signal, ts, value, QUALITY_OF_CODE[quality])
        for ts, value, quality in conn.execute(_HISTORY_SQL, params)
    ]


def read_rollups(
    conn: sqlite3.Connection, sid: int, first: int, last: int, slots: int
) -> list[Rollup]:
    """Stored rollups of one signal for minutes ``first..last``."""
    rows = conn.execute(_ROLLUPS_SQL, (first, last, slots, sid)).fetchall()
    return [rollup_from_row(row) for row in rows]


def delete_slice(
    conn: sqlite3.Connection,
    table: str,
    column: str,
    slots: int,
    part: tuple[int, int],
    limit: float,
) -> int:
    """Delete rows with ``column < limit`` in slice ``part = (index, count)`` of the slots."""
    step = math.ceil(slots / part[1])
    lo, hi = (part[0] * step) << SIGNAL_BITS, ((part[0] + 1) * step) << SIGNAL_BITS
    sql = f"DELETE FROM {table} WHERE id >= ? AND id < ? AND {column} < ?"
    return conn.execute(sql, (lo, hi, limit)).rowcount
