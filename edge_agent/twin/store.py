"""The edge twin's store: latest value, bounded raw history and minute rollups in SQLite.

Layout: fixed slots, overwritten in place
-----------------------------------------
Each signal owns ``max_samples`` slots; its n-th sample goes to slot
``n % max_samples`` in one rowid table, at row id ``slot << 20 | signal_id``, and
is written with ``INSERT OR REPLACE``. The table therefore holds at most
``signals x max_samples`` rows and the file stops growing once every ring is full;
nothing needs VACUUM. Rows older than ``max_age`` are hidden from every read and
deleted by an incremental pass (a slice of the slots per flush, a full pass about
every 10 minutes); their pages go to the freelist and are reused by the next
writes. The slot is the high part of the row id so that one flush (every signal's
next sample) lands in a few adjacent pages instead of one page per signal.

Measured against the alternatives (``python -m bench.twin_ingest``, BENCHMARKS.md,
10,000 signals, one sample each per transaction): fixed slots keyed
``(signal, slot)`` and append-and-delete keyed ``(signal, seq)`` dirty one page
per signal per flush and ran 4x and 6x slower (212k and 149k vs 866k samples/s),
with files 10-17 % larger. The whole store (rings, latest, rollups) ingests at
1.07-1.31x a naive raw ``executemany`` loop and 0.58-0.72x SQLite's floor. A
slot costs about 30 bytes on disk; a rollup row about 60.

BAD runs
--------
A run of BAD samples of one signal keeps only its first and its newest sample in
the ring (the newest overwrites the slot in place): line noise or a device that
refuses reads for hours would otherwise replace the signal's whole GOOD history
with BAD rows. The rollups still count every BAD sample; the latest value is the
newest. After a restart a run that goes on takes one more slot.

Durability contract
-------------------
One :meth:`SignalStore.write` is one transaction (the agent calls it once per
``flush_interval`` with what it buffered). The file is in WAL mode.

* Process crash or ``kill -9``: nothing committed is lost, whatever
  ``sync`` is; the loss is what the agent had buffered and not yet passed
  to ``write()``: at most one ``flush_interval``.
* Power cut or kernel crash, ``sync: full`` (the default): the WAL is
  fsynced at each commit, so again at most the last ``flush_interval``.
* Power cut, ``sync: normal``: the WAL is fsynced only at checkpoints
  (about every 1000 pages written), so the commits since the last checkpoint may
  be lost too - seconds to minutes of data - but the file stays consistent.
  Choose it to spare an SD card the one fsync per flush.

Disk full
---------
``write()`` never raises for a full disk (or ``max_size`` reached): it rolls the
transaction back, keeps the latest values in memory, counts the samples it could
not store (``health.dropped``), sets ``health.full``, logs one
ERROR when the condition starts and one WARNING when writes succeed again. Any
other SQLite failure is raised as :class:`StoreError`.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from pathlib import Path
from typing import IO

import numpy as np

from edge_agent.errors import StoreError

__all__ = ["SignalStore", "StoreError"]
from edge_agent.twin import queries
from edge_agent.twin import sql_layout as layout
from edge_agent.twin.config import MINUTE, TwinConfig
from edge_agent.twin.queries import QUALITY_CODE, RingColumns
from edge_agent.twin.rollup_buffer import RollupBuffer
from edge_agent.twin.rollups import (
    MERGE_SQL,
    REPLACE_SQL,
    SIGNAL_BITS,
    RollupRow,
)
from edge_agent.twin.signal_status import WriteHealth
from edge_agent.twin.store_reads import StoreReads
from edge_agent.types import Quality, Sample, SignalInfo

log = logging.getLogger(__name__)

PRUNE_PASS = 600.0
"""Seconds for the incremental age pruning to sweep every slot once."""
PRUNE_CHUNKS = 64
MAX_SIGNALS = 1 << SIGNAL_BITS
BAD_CODE = QUALITY_CODE[Quality.BAD]
_COLUMNS = tuple(itemgetter(i) for i in range(4))  # Sample's signal, ts, value, quality


class SignalStore(StoreReads):
    """Latest values, bounded raw rings and minute rollups of every signal.

    Use :meth:`open`; one thread at a time (the agent's DB worker), never the
    event loop. Its reads (latest, status, history, rollups) are in
    :class:`~edge_agent.twin.store_reads.StoreReads`.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        config: TwinConfig,
        readonly: bool,
        lock: IO[bytes] | None = None,
    ) -> None:
        self._conn = conn
        self._lock = lock
        self.config = config
        self.readonly = readonly
        self.clock: Callable[[], float] = time.time
        self.health = WriteHealth()
        self._slots = config.max_samples
        self._ids: dict[str, int] = {}
        self._infos: dict[int, SignalInfo] = {}
        self._unsaved: list[int] = []
        self._seq = np.zeros(0, dtype=np.int64)
        self._runs = np.zeros(0, dtype=np.int64)  # BAD samples at each ring's head, up to 2
        self._latest: dict[str, Sample] = {}
        self._rollups = RollupBuffer(config.rollup_slots())
        self._saved_watermark: int | None = None
        self._prune_at = 0.0
        self._prune_chunk = 0

    @classmethod
    def open(cls, path: Path, config: TwinConfig, *, readonly: bool = False) -> SignalStore:
        """Open (or create) the twin file; re-slot it if ``max_samples`` changed.

        Args:
            path: the SQLite file.
            config: the twin config.
            readonly: open for reading only (the CLI, beside a running agent). The
                store then reads one snapshot, the file as it was when opened (a
                long-lived reader holds the WAL from being checkpointed: close it).

        Raises:
            StoreError: the file cannot be opened, is not a twin file, or another
                process (a second agent on the same ``data_dir``?) writes to it.
        """
        lock = None
        try:
            lock = None if readonly else layout.lock_writer(path)
            store = cls(
                layout.connect(path, config.sync, readonly, config.max_size),
                config,
                readonly,
                lock,
            )
        except BlockingIOError as exc:
            raise StoreError(f"twin {path}: another process is writing to it") from exc
        except (OSError, sqlite3.Error) as exc:
            if lock is not None:
                lock.close()
            raise StoreError(f"twin {path}: cannot open: {exc}") from exc
        try:
            if readonly:  # one snapshot for the store's life: heads and slots agree
                store._conn.execute("BEGIN")
            store._load()
        except sqlite3.Error as exc:
            store.close()
            raise StoreError(f"twin {path}: cannot open: {exc}") from exc
        except BaseException:
            store.close()
            raise
        return store

    def _load(self) -> None:
        if not self.readonly:
            layout.create(self._conn, self.config.max_samples, self.config.rollup_slots())
        meta = layout.read_meta(self._conn)
        if "heads" not in meta:
            raise StoreError("not an edge-agent twin file (no meta table)")
        self._seq = layout.heads_from_blob(meta["heads"])
        self._runs = np.zeros(self._seq.size, dtype=np.int64)
        self._slots = int(meta["slots"])
        if not self.readonly:
            self._reshape(meta)
        watermark = meta.get("watermark")
        self._saved_watermark = None if watermark is None else int(watermark)
        self._rollups = RollupBuffer(int(meta["rollup_slots"]), self._saved_watermark)
        self._load_catalogue()
        self._load_latest()
        if not self.readonly:
            self._rebuild_open_minutes()

    def _reshape(self, meta: dict[str, object]) -> None:
        if self._slots != self.config.max_samples:
            log.warning(
                "twin: re-slotting rings from %d to %d samples per signal",
                self._slots,
                self.config.max_samples,
            )
            layout.reshape_ring(self._conn, self._seq, self._slots, self.config.max_samples)
            self._slots = self.config.max_samples
        if meta["rollup_slots"] != self.config.rollup_slots():
            layout.reshape_rollups(self._conn, self.config.rollup_slots())
            meta["rollup_slots"] = self.config.rollup_slots()

    def _load_catalogue(self) -> None:
        for sid, info in queries.read_catalogue(self._conn):
            self._ids[info.signal] = sid
            self._infos[sid] = info
        if self._infos:
            self._grow_heads(max(self._infos))

    def _load_latest(self) -> None:
        names = {sid: info.signal for sid, info in self._infos.items()}
        self._latest = queries.read_latest(self._conn, self._seq, self._slots, names)
        for name, sample in self._latest.items():  # a BAD run goes on after a restart
            self._runs[self._ids[name]] = int(sample.quality == Quality.BAD)

    def _rebuild_open_minutes(self) -> None:
        """Re-fold the minutes that were still open when the file was last written."""
        floor = self._rollups.floor()
        if floor is not None:
            self._rollups.add_batch(*queries.read_recent(self._conn, floor * MINUTE))

    def register(self, infos: Iterable[SignalInfo]) -> None:
        """Add or update catalogue entries (name, source, asset, unit, interval)."""
        self._require_writer()
        new: dict[str, SignalInfo] = {}  # in order of first mention, the last info wins
        for info in infos:
            sid = self._ids.get(info.signal)
            if sid is None:
                new[info.signal] = info
            elif self._infos[sid] != info:
                self._infos[sid] = info
                self._unsaved.append(sid)
        self._unsaved += self._allocate(list(new.values()))
        if self._unsaved:
            self._commit(([], [], [], []), (self._seq.copy(), self._runs.copy()))

    def write(self, samples: Sequence[Sample]) -> None:
        """Store a batch in one transaction: rings, latest values, rollups.

        Unknown signals are added to the catalogue (interval 0: never stale).
        Samples whose timestamp is not a finite number are dropped and counted in
        ``health.rejected``. A run of BAD samples keeps only its first and newest
        sample in the ring (the rollups count them all). A full disk does not
        raise: see the module docstring.
        """
        self._require_writer()
        if not samples:
            return
        # One column at a time, in C (zip(*samples) builds one iterator per sample: 4x slower).
        names, stamps, values, qualities = (list(map(get, samples)) for get in _COLUMNS)
        ts = np.array(stamps, dtype=np.float64)
        if not np.isfinite(ts).all():
            self.health.reject([s for s in samples if not math.isfinite(s.ts)])
            self.write([s for s in samples if math.isfinite(s.ts)])
            return
        sid = np.array(self._signal_ids(names), dtype=np.int64)
        codes = list(map(QUALITY_CODE.__getitem__, qualities))
        before = self._seq.copy(), self._runs.copy()
        bad = np.array(codes, dtype=np.int64) == BAD_CODE
        slots = queries.compact_slots(self._seq, self._runs, sid, bad, self._slots)
        row_ids = (slots << SIGNAL_BITS) | sid
        ring: RingColumns = (row_ids.tolist(), stamps, values, codes)
        self._latest.update(zip(names, samples, strict=True))
        self._rollups.add_batch(sid, ts, np.array(values, np.float64))
        self._rollups.sweep()
        self._commit(ring, before)

    def _signal_ids(self, names: Sequence[str]) -> list[int]:
        ids = self._ids
        try:
            return [ids[name] for name in names]
        except KeyError:
            unknown = [_guess_info(name) for name in dict.fromkeys(names) if name not in ids]
            self._unsaved += self._allocate(unknown)
            return [ids[name] for name in names]

    def _commit(self, ring: RingColumns, before: tuple[np.ndarray, np.ndarray]) -> None:
        pending, merges = self._rollups.take()
        watermark = self._rollups.watermark
        try:
            self._transaction(ring, pending, merges, watermark)
        except sqlite3.Error as exc:
            self._rollback()
            self._seq, self._runs = before
            self._rollups.keep(pending, merges, limit=10 * max(len(self._ids), 100))
            if not _is_full(exc):
                raise StoreError(f"twin: write failed: {exc}") from exc
            self.health.failed(exc, len(ring[0]))
            return
        self._unsaved.clear()
        self._saved_watermark = watermark
        self.health.succeeded()

    def _transaction(
        self,
        ring: RingColumns,
        pending: list[RollupRow],
        merges: list[RollupRow],
        watermark: int | None,
    ) -> None:
        conn = self._conn
        conn.execute("BEGIN")
        if self._unsaved:
            entries = [(sid, self._infos[sid]) for sid in dict.fromkeys(self._unsaved)]
            queries.write_catalogue(conn, entries)
        queries.write_ring(conn, ring)
        if pending:
            conn.executemany(REPLACE_SQL, pending)
        if merges:
            conn.executemany(MERGE_SQL, merges)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'heads'", (self._seq.tobytes(),))
        if watermark != self._saved_watermark:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('watermark', ?)", (watermark,))
        self._prune_some()
        conn.execute("COMMIT")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.debug("twin: rollback failed", exc_info=True)

    def _prune_some(self) -> None:
        now = self.clock()
        if now - self._prune_at < PRUNE_PASS / PRUNE_CHUNKS:
            return
        self._prune_at = now
        self._prune_slice(self._prune_chunk, PRUNE_CHUNKS, now)
        self._prune_chunk = (self._prune_chunk + 1) % PRUNE_CHUNKS

    def _prune_slice(self, chunk: int, chunks: int, now: float) -> int:
        part = (chunk, chunks)
        old_sample = now - self.config.max_age
        old_minute = (now - self.config.rollup_max_age) / MINUTE
        return queries.delete_slice(
            self._conn, "samples", "ts", self._slots, part, old_sample
        ) + queries.delete_slice(
            self._conn, "rollups", "minute", self._rollups.slots, part, old_minute
        )

    def prune_expired(self) -> int:
        """Delete every sample older than ``max_age`` and rollup older than ``rollup_max_age``.

        Returns:
            the number of rows deleted.
        """
        self._require_writer()
        with self._conn:
            self._conn.execute("BEGIN")
            return self._prune_slice(0, 1, self.clock())

    def close(self) -> None:
        """Close the file (committed writes are already durable)."""
        self._conn.close()
        if self._lock is not None:
            self._lock.close()

    def _require_writer(self) -> None:
        if self.readonly:
            raise StoreError("twin: the store was opened read-only")

    def _allocate(self, infos: Sequence[SignalInfo]) -> list[int]:
        """Ids for new signals, the heads grown once (10,000 one by one: 0.1 s of copies)."""
        first = max(len(self._seq), 1)
        sids = list(range(first, first + len(infos)))
        if not sids:
            return sids
        if sids[-1] >= MAX_SIGNALS:
            raise StoreError(f"twin: more than {MAX_SIGNALS - 1} signals")
        for sid, info in zip(sids, infos, strict=True):
            self._ids[info.signal] = sid
            self._infos[sid] = info
        self._grow_heads(sids[-1])
        return sids

    def _grow_heads(self, sid: int) -> None:
        if self._seq.size <= sid:
            grow = np.zeros(sid + 1 - self._seq.size, dtype=np.int64)
            self._seq, self._runs = np.r_[self._seq, grow], np.r_[self._runs, grow]


def _guess_info(signal: str) -> SignalInfo:
    return SignalInfo(signal, signal.split(".", 1)[0], 0.0)


def _is_full(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_FULL
