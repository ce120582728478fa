"""Per-minute rollups: min, max, mean, last, count (and BAD count) per signal.

The long-term tier of the twin. Samples are folded into one open accumulator per
signal in memory; a minute is *closed* (written once) when its signal moves on to
a later minute, or when the newest minute seen from any signal (the watermark) is
two minutes past it. A sample for a minute that is already closed is merged into
the stored row (rare: late or out-of-order device clocks).

Nothing here is lost in a crash: the open minutes are rebuilt at start from the
raw ring, which holds every sample newer than ``floor = watermark - 1`` (stored in
the same transaction as the closed rows), as long as the ring holds at least two
minutes of the signal.

Rows live in a fixed-slot ring like the raw samples: ``id = (minute % slots) <<
SIGNAL_BITS | signal_id``; a row is only valid when its ``minute`` column matches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from edge_agent.twin.config import MINUTE

SIGNAL_BITS = 20
"""Low bits of a row id hold the signal id: at most 1,048,576 signals."""
SIGNAL_MASK = (1 << SIGNAL_BITS) - 1

NONE = np.iinfo(np.int64).min
"""Minute of a signal that has no open accumulator."""

# (id, minute, min, max, sum, last, last_ts, count, bad); NaN or None is stored as NULL
RollupRow = tuple[int, int, float | None, float | None, float, float | None, float, int, int]

REPLACE_SQL = "INSERT OR REPLACE INTO rollups VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
MERGE_SQL = """
INSERT INTO rollups VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET
  min = CASE WHEN minute = excluded.minute
        THEN min(coalesce(min, excluded.min), coalesce(excluded.min, min)) ELSE excluded.min END,
  max = CASE WHEN minute = excluded.minute
        THEN max(coalesce(max, excluded.max), coalesce(excluded.max, max)) ELSE excluded.max END,
  sum = CASE WHEN minute = excluded.minute THEN sum + excluded.sum ELSE excluded.sum END,
  last = CASE WHEN minute = excluded.minute AND last_ts > excluded.last_ts
         THEN last ELSE excluded.last END,
  last_ts = CASE WHEN minute = excluded.minute
            THEN max(last_ts, excluded.last_ts) ELSE excluded.last_ts END,
  count = CASE WHEN minute = excluded.minute THEN count + excluded.count ELSE excluded.count END,
  bad = CASE WHEN minute = excluded.minute THEN bad + excluded.bad ELSE excluded.bad END,
  minute = excluded.minute
"""


@dataclass(frozen=True, slots=True)
class Rollup:
    """One minute of one signal.

    Attributes:
        ts: start of the minute, UTC epoch seconds.
        min: smallest value (None if the minute had only BAD samples).
        max: largest value.
        mean: arithmetic mean of the values.
        last: value of the newest sample with a value.
        count: samples with a value (GOOD or UNCERTAIN).
        bad: BAD samples. A down source marks its signals BAD at once and then once
            per ``BAD_REPEAT`` (``sources.poll``), so in an outage this says the minute had
            one, not how many polls it missed (``link.<source>``'s mean does).
    """

    ts: float
    min: float | None
    max: float | None
    mean: float | None
    last: float | None
    count: int
    bad: int


def minute_of(ts: float) -> int:
    """The minute number (epoch minutes) a timestamp falls in."""
    return math.floor(ts / MINUTE)


def rollup_from_row(
    row: tuple[int, float | None, float | None, float, float | None, int, int],
) -> Rollup:
    """A :class:`Rollup` from ``(minute, min, max, sum, last, count, bad)``."""
    minute, lo, hi, total, last, count, bad = row
    mean = total / count if count else None
    return Rollup(minute * MINUTE, lo, hi, mean, last, count, bad)


class LateAcc:
    """Running aggregate of one signal in one minute, for late samples (rare)."""

    __slots__ = ("bad", "count", "hi", "last", "last_ts", "lo", "minute", "total")

    def __init__(self, minute: int) -> None:
        self.minute = minute
        self.lo: float | None = None
        self.hi: float | None = None
        self.total = 0.0
        self.count = 0
        self.bad = 0
        self.last: float | None = None
        self.last_ts = -math.inf

    def add(self, ts: float, value: float | None) -> None:
        """Fold one sample in (None or NaN: BAD)."""
        if value is None or math.isnan(value):
            self.bad += 1
            return
        if self.count == 0:
            self.lo = self.hi = value
        elif value < self.lo:  # type: ignore[operator]
            self.lo = value
        elif value > self.hi:  # type: ignore[operator]
            self.hi = value
        self.total += value
        self.count += 1
        if ts >= self.last_ts:
            self.last, self.last_ts = value, ts

    def row(self, sid: int, slots: int) -> RollupRow:
        """The row to merge into the rollups table."""
        row_id = (self.minute % slots) << SIGNAL_BITS | sid
        last_ts = self.last_ts if self.count else self.minute * MINUTE
        return (
            row_id,
            self.minute,
            self.lo,
            self.hi,
            self.total,
            self.last,
            last_ts,
            self.count,
            self.bad,
        )


def combine(rows: Iterable[RollupRow], start: float) -> dict[int, Rollup]:
    """One :class:`Rollup` per signal id over several minutes' rows (``ts`` = ``start``).

    A later row for the same ``(id, minute)`` replaces an earlier one, so pass
    the stored rows first and the rows still in memory after them.
    """
    latest = {(row[0], row[1]): row for row in rows}
    merged: dict[int, RollupRow] = {}
    for row in latest.values():
        sid = row[0] & SIGNAL_MASK
        old = merged.get(sid)
        merged[sid] = row if old is None else _merge(old, row)
    return {sid: _window(row, start) for sid, row in merged.items()}


def _merge(a: RollupRow, b: RollupRow) -> RollupRow:
    newer = b if b[7] and (not a[7] or b[6] >= a[6]) else a
    return (
        a[0],
        a[1],
        _pick(min, a[2], b[2]),
        _pick(max, a[3], b[3]),
        a[4] + b[4],
        newer[5],
        newer[6],
        a[7] + b[7],
        a[8] + b[8],
    )


def _pick(fn: Callable[[list[float]], float], a: float | None, b: float | None) -> float | None:
    known = [v for v in (a, b) if v is not None and not math.isnan(v)]
    return fn(known) if known else None


def _window(row: RollupRow, start: float) -> Rollup:
    _, _, lo, hi, total, last, _, count, bad = row
    return Rollup(
        ts=start,
        min=_pick(min, lo, None),
        max=_pick(max, hi, None),
        mean=total / count if count else None,
        last=last if count else None,
        count=count,
        bad=bad,
    )
