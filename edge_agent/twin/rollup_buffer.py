"""The open minute of every signal as numpy columns, folded in a whole batch at a time.

Per sample, the Python cost of a rollup is what bounds the twin's ingest rate, so
a batch is grouped by (signal, minute) with one sort and ``reduceat``: each group
either joins the signal's open minute, closes it and opens a newer one, or is
closed at once (a batch that spans several minutes). Samples for minutes already
closed are *late* and go to :class:`~edge_agent.twin.rollups.LateAcc` rows that
are merged into the table. See :mod:`edge_agent.twin.rollups` for the rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_agent.twin.config import MINUTE
from edge_agent.twin.rollups import NONE, SIGNAL_BITS, LateAcc, Rollup, RollupRow

_I64 = np.int64


@dataclass
class _Groups:
    """One entry per (signal, minute) of a batch, sorted by signal then minute."""

    sid: np.ndarray
    minute: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    total: np.ndarray
    count: np.ndarray
    bad: np.ndarray
    last: np.ndarray
    last_ts: np.ndarray
    is_last: np.ndarray  # the newest minute of its signal in this batch


def _group(sid: np.ndarray, minute: np.ndarray, ts: np.ndarray, val: np.ndarray) -> _Groups:
    if not np.count_nonzero(np.bincount(sid) > 1):
        return _singles(sid, minute, ts, val)
    return _sorted_groups(sid, minute, ts, val)


def _sorted_groups(sid: np.ndarray, minute: np.ndarray, ts: np.ndarray, val: np.ndarray) -> _Groups:
    order = np.lexsort((ts, minute, sid))  # stable: equal times keep arrival order
    s, m, t, v = sid[order], minute[order], ts[order], val[order]
    n = s.size
    starts = _run_starts(s, m)
    good = ~np.isnan(v)
    count = np.add.reduceat(good.astype(_I64), starts)
    last_pos = np.maximum.reduceat(np.where(good, np.arange(n), -1), starts)
    has = last_pos >= 0
    pick = np.where(has, last_pos, 0)
    gs = s[starts]
    size = np.empty_like(starts)
    size[:-1] = starts[1:]
    size[-1] = n
    size -= starts
    return _Groups(
        sid=gs,
        minute=m[starts],
        lo=np.fmin.reduceat(v, starts),
        hi=np.fmax.reduceat(v, starts),
        total=np.add.reduceat(np.where(good, v, 0.0), starts),
        count=count,
        bad=size - count,
        last=np.where(has, v[pick], np.nan),
        last_ts=np.where(has, t[pick], -np.inf),
        is_last=_run_ends(gs),
    )


def _singles(sid: np.ndarray, minute: np.ndarray, ts: np.ndarray, val: np.ndarray) -> _Groups:
    """:func:`_group` of a batch with one sample per signal (a flush at ticks >= the flush
    interval): every sample is its own group, in any order, and no sort is needed."""
    good = ~np.isnan(val)
    count = good.astype(_I64)
    return _Groups(
        sid=sid,
        minute=minute,
        lo=val.copy(),  # _absorb updates the groups in place: no two may share memory
        hi=val.copy(),
        total=np.where(good, val, 0.0),
        count=count,
        bad=1 - count,
        last=val,
        last_ts=np.where(good, ts, -np.inf),
        is_last=np.ones(sid.size, dtype=bool),
    )


# numpy calls on small arrays cost 1-3 us each, whatever their size: at 1 s ticks one
# flush holds a few hundred samples, and np.r_ (about 10 us), np.diff and ndarray.any()
# (Python wrappers) were a third of the flush's fixed cost. These helpers use plain ufuncs.


def _run_starts(s: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Positions where a run of equal (s, m) pairs starts (both sorted together, non-empty)."""
    edge = np.empty(s.size, dtype=bool)
    edge[0] = True
    np.not_equal(s[1:], s[:-1], out=edge[1:])
    edge[1:] |= m[1:] != m[:-1]
    starts: np.ndarray = edge.nonzero()[0]
    return starts


def _run_ends(s: np.ndarray) -> np.ndarray:
    """True at the last element of each run of equal values of ``s`` (non-empty)."""
    end = np.empty(s.size, dtype=bool)
    end[-1] = True
    np.not_equal(s[1:], s[:-1], out=end[:-1])
    return end


def _some(mask: np.ndarray) -> bool:
    """``mask.any()`` without its Python wrapper (0.7 us instead of 3)."""
    return bool(np.count_nonzero(mask))


class RollupBuffer:
    """Open minutes per signal, and the closed rows waiting to be written.

    Args:
        slots: minutes kept per signal (the ring size of the rollups table).
        watermark: newest minute seen before (from the store's meta), or None.
    """

    _FLOATS = ("lo", "hi", "total", "last", "last_ts")
    _INTS = ("minute", "count", "bad", "closed_upto")

    def __init__(self, slots: int, watermark: int | None = None) -> None:
        self.slots = slots
        self.watermark = watermark
        self.pending: list[RollupRow] = []
        self.merges: list[RollupRow] = []
        self._late: dict[tuple[int, int], LateAcc] = {}
        self._cols: dict[str, np.ndarray] = {}
        for name in self._FLOATS:
            self._cols[name] = np.empty(0, dtype=np.float64)
        for name in self._INTS:
            self._cols[name] = np.empty(0, dtype=_I64)

    def add_batch(self, sid: np.ndarray, ts: np.ndarray, val: np.ndarray) -> None:
        """Fold a batch in: signal ids, timestamps, values (NaN for BAD)."""
        if sid.size == 0:
            return
        self._grow(int(sid.max()) + 1)
        minute = np.floor(ts / MINUTE).astype(_I64)
        late = self._late_mask(sid, minute)
        if _some(late):
            for i in late.nonzero()[0]:
                acc = self._late.setdefault((int(sid[i]), int(minute[i])), LateAcc(int(minute[i])))
                acc.add(float(ts[i]), float(val[i]))
            keep = ~late
            sid, minute, ts, val = sid[keep], minute[keep], ts[keep], val[keep]
            if sid.size == 0:
                return
        self._fold(_group(sid, minute, ts, val))
        top = int(minute.max())
        if self.watermark is None or top > self.watermark:
            self.watermark = top

    def sweep(self) -> bool:
        """Close minutes two behind the watermark; True if any were closed."""
        if self.watermark is None:
            return False
        minute = self._cols["minute"]
        sids = ((minute != NONE) & (minute < self.watermark - 1)).nonzero()[0]
        if sids.size == 0:
            return False
        self._close(sids)
        return True

    def take(self) -> tuple[list[RollupRow], list[RollupRow]]:
        """Rows to replace and rows to merge; the caller writes them or calls :meth:`keep`."""
        merges = self.merges + [acc.row(sid, self.slots) for (sid, _), acc in self._late.items()]
        self._late.clear()
        pending, self.pending, self.merges = self.pending, [], []
        return pending, merges

    def keep(self, pending: list[RollupRow], merges: list[RollupRow], limit: int) -> None:
        """Put rows back after a failed write, keeping at most ``limit`` of each kind."""
        self.pending = (pending + self.pending)[-limit:]
        self.merges = (merges + self.merges)[-limit:]

    def open_rollup(self, sid: int) -> Rollup | None:
        """The minute still being accumulated for ``sid``, if any."""
        cols = self._cols
        if sid >= cols["minute"].size or cols["minute"][sid] == NONE:
            return None
        count = int(cols["count"][sid])
        return Rollup(
            ts=int(cols["minute"][sid]) * MINUTE,
            min=_opt(cols["lo"][sid]),
            max=_opt(cols["hi"][sid]),
            mean=float(cols["total"][sid]) / count if count else None,
            last=_opt(cols["last"][sid]),
            count=count,
            bad=int(cols["bad"][sid]),
        )

    def floor(self) -> int | None:
        """Every minute below this one is written (once pending rows are)."""
        return None if self.watermark is None else self.watermark - 1

    def _late_mask(self, sid: np.ndarray, minute: np.ndarray) -> np.ndarray:
        current = self._cols["minute"][sid]
        late: np.ndarray = (current != NONE) & (minute < current)
        late |= minute <= self._cols["closed_upto"][sid]
        if self.watermark is not None:
            late |= minute < self.watermark - 1
        return late

    def _fold(self, g: _Groups) -> None:
        cols = self._cols
        current = cols["minute"][g.sid]
        same = g.minute == current
        absorbed = np.zeros(cols["minute"].size, dtype=bool)
        if _some(same):
            self._absorb(g, same)
            absorbed[g.sid[same]] = True
        superseded = g.is_last & (current != NONE) & (g.minute > current) & ~absorbed[g.sid]
        if _some(superseded):
            self._close(g.sid[superseded])
        done = ~g.is_last
        if _some(done):
            self.pending.extend(self._rows(g, done))
            np.maximum.at(cols["closed_upto"], g.sid[done], g.minute[done])
        keep = g.is_last
        for name in ("minute", "lo", "hi", "total", "count", "bad", "last", "last_ts"):
            cols[name][g.sid[keep]] = getattr(g, name)[keep]

    def _absorb(self, g: _Groups, same: np.ndarray) -> None:
        """Combine the groups of a signal's open minute with what it holds already."""
        cols, s = self._cols, g.sid[same]
        g.lo[same] = np.fmin(g.lo[same], cols["lo"][s])
        g.hi[same] = np.fmax(g.hi[same], cols["hi"][s])
        g.total[same] += cols["total"][s]
        g.count[same] += cols["count"][s]
        g.bad[same] += cols["bad"][s]
        older = cols["last_ts"][s] > g.last_ts[same]
        g.last[same] = np.where(older, cols["last"][s], g.last[same])
        g.last_ts[same] = np.maximum(cols["last_ts"][s], g.last_ts[same])

    def open_rows(self, first: int, last: int) -> list[RollupRow]:
        """Rows of the open minutes in ``first..last - 1``, then the closed rows not yet written."""
        minute = self._cols["minute"]
        sids = np.flatnonzero((minute >= first) & (minute < last))
        unwritten = [row for row in self.pending if first <= row[1] < last]
        return unwritten + self._rows(self._view(sids), np.ones(sids.size, dtype=bool))

    def _view(self, sids: np.ndarray) -> _Groups:
        cols = self._cols
        fields = {
            name: cols[name][sids]
            for name in ("minute", "lo", "hi", "total", "count", "bad", "last", "last_ts")
        }
        return _Groups(sid=sids, is_last=np.zeros(sids.size, dtype=bool), **fields)

    def _close(self, sids: np.ndarray) -> None:
        view = self._view(sids)
        self.pending.extend(self._rows(view, np.ones(sids.size, dtype=bool)))
        self._cols["closed_upto"][sids] = view.minute
        self._reset(sids)

    def _rows(self, g: _Groups, which: np.ndarray) -> list[RollupRow]:
        minute, sid, count = g.minute[which], g.sid[which], g.count[which]
        ids = ((minute % self.slots) << SIGNAL_BITS) | sid
        last_ts = np.where(count > 0, g.last_ts[which], minute * MINUTE)
        return list(
            zip(
                ids.tolist(),
                minute.tolist(),
                g.lo[which].tolist(),
                g.hi[which].tolist(),
                g.total[which].tolist(),
                g.last[which].tolist(),
                last_ts.tolist(),
                count.tolist(),
                g.bad[which].tolist(),
                strict=True,
            )
        )

    def _reset(self, sids: np.ndarray) -> None:
        cols = self._cols
        cols["minute"][sids] = NONE
        for name in ("lo", "hi", "last"):
            cols[name][sids] = np.nan
        cols["last_ts"][sids] = -np.inf
        for name in ("total", "count", "bad"):
            cols[name][sids] = 0

    def _grow(self, size: int) -> None:
        old = self._cols["minute"].size
        if size <= old:
            return
        new = max(size, 2 * old, 64)
        for name, col in self._cols.items():
            grown = np.zeros(new, dtype=col.dtype)
            grown[:old] = col
            self._cols[name] = grown
        self._cols["closed_upto"][old:] = NONE
        self._reset(np.arange(old, new))


def _opt(value: np.floating | float) -> float | None:
    return None if np.isnan(value) else float(value)
