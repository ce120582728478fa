"""The durable outbox: rows per sink in SQLite, taken in batches, then acked, kept or rejected.

Telegraf's buffer transaction, on disk. One SQLite file of its own (WAL), used from
one worker thread. Each alert becomes one row per sink, so a dead sink never holds
back a live one. :meth:`Outbox.take` returns a sink's oldest rows, alerts before
telemetry (alerts overtake a telemetry backlog); the delivery loop then calls
:meth:`~Outbox.ack` (delivered: delete), :meth:`~Outbox.keep` (retry later) or
:meth:`~Outbox.reject` (refused upstream: delete and count).

Bounds (``max_rows``, ``max_size``) apply to each sink's backlog; what is dropped
first when a put goes over is :mod:`.outbox_ledger`'s job (telemetry, then command
audit events, then cleared alerts, then raised alerts; never the batch in flight).
Each drop is counted (persisted), logged at ERROR, and announced upstream: the
next batch taken after a drop starts with a ``notice`` record that carries the
running totals.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from edge_agent.errors import StorageError
from edge_agent.forward import alert_state
from edge_agent.forward.config import OutboxConfig
from edge_agent.forward.encode import (
    TelemetrySummary,
    encode_alert,
    encode_notice,
    encode_telemetry,
    with_fields,
)
from edge_agent.forward.outbox_ledger import Ledger
from edge_agent.forward.outbox_rows import (
    ALERT,
    CLASSES,
    COMMAND,
    NOTICE,
    PROGNOSIS,
    ROW_OVERHEAD,
    SCHEMA,
    TELEMETRY,
    Record,
    add_seq_column,
)
from edge_agent.forward.outbox_status import OutboxStatus, read_status
from edge_agent.types import Alert, AlertState

log = logging.getLogger(__name__)


class Outbox:
    """The durable, bounded outbox. Synchronous; use it from one thread.

    Args:
        db: an open connection (see :meth:`open`).
        config: bounds and policies.
        sinks: names of the configured sinks; each put adds one row per sink.
    """

    def __init__(self, db: sqlite3.Connection, config: OutboxConfig, sinks: Sequence[str]) -> None:
        self._db = db
        self.config = config
        self.sinks = list(sinks)
        self._ledger = Ledger(db, config)
        self._inflight: dict[str, set[int]] = {}
        self._after: dict[str, dict[int, int]] = {}
        self._notice: dict[str, tuple[int, ...]] = {}

    @classmethod
    def open(cls, path: Path, config: OutboxConfig, sinks: Sequence[str]) -> Outbox:
        """Open (or create) the outbox file and load its bookkeeping."""
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={config.sync.upper()}")
        db.executescript(SCHEMA + alert_state.SCHEMA + alert_state.REQUESTS_SCHEMA)
        add_seq_column(db)
        outbox = cls(db, config, sinks)
        outbox._load()
        return outbox

    def _load(self) -> None:
        self._ledger.load()
        orphans = {sink for sink, _ in self._ledger.usage} - set(self.sinks)
        if orphans:
            log.warning("outbox: rows wait for sinks no longer configured: %s", sorted(orphans))

    def close(self) -> None:
        """Close the file (rows stay for the next start)."""
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One write transaction; an SQLite failure leaves nothing behind and is a StorageError."""
        try:
            with self._raw_tx():
                yield
        except sqlite3.Error as exc:
            raise StorageError(f"outbox: {exc}") from exc

    @contextmanager
    def _raw_tx(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            # SQLite has already rolled back after some errors (SQLITE_FULL): a second
            # ROLLBACK would raise and hide the real error.
            try:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            finally:
                self._ledger.load()  # the in-memory state counted the undone writes
            raise

    # -- put ---------------------------------------------------------------

    def put_alerts(self, alerts: Sequence[Alert], gateway: str) -> None:
        """Store alert events: one row per configured sink per alert, in one transaction.

        The same transaction updates the open-alert state (:mod:`.alert_state`), so
        a crash leaves the events and the state consistent.
        """
        now = time.time()
        items = [
            (ALERT, str(a.state), gateway, a.asset, a.window_end, encode_alert(a, gateway))
            for a in alerts
        ]
        self._put(items, self.sinks, now, alerts=alerts)

    def put_commands(self, events: Sequence[tuple[str, float, bytes]], gateway: str) -> None:
        """Store audit events of commands (``(asset, ts, body)``), one row per sink."""
        items = [(COMMAND, "", gateway, asset, ts, body) for asset, ts, body in events]
        self._put(items, self.sinks, time.time())

    def open_alerts(self) -> list[Alert]:
        """The raise events of the alerts open now (as last stored)."""
        return alert_state.open_alerts(self._db)

    def adopt_open_alerts(self, alerts: Sequence[Alert]) -> int:
        """Record alerts as open without queueing events (see ``adopt_legacy_open_alerts``)."""
        with self._tx():
            if alert_state.has_history(self._db):
                return 0
            alert_state.record(self._db, [a for a in alerts if a.state is AlertState.RAISED])
        return len(alerts)

    def alert_history(self, limit: int = 100, since: float = 0.0) -> list[Alert]:
        """The latest alert events, newest first."""
        return alert_state.history(self._db, limit, since)

    def put_notice(self, body: bytes) -> None:
        """Store a ``notice`` payload for every sink, delivered first, like an alert."""
        gateway = str(json.loads(body).get("gateway", ""))
        self._put([(ALERT, NOTICE, gateway, "", time.time(), body)], self.sinks, time.time())

    def put_telemetry(
        self,
        summaries: Sequence[TelemetrySummary],
        gateway: str,
        sinks: Sequence[str],
        until: float | None = None,
    ) -> None:
        """Store telemetry summaries for the given sinks (those that want telemetry).

        Args:
            summaries: the summaries, oldest window first.
            gateway: this gateway's id.
            sinks: the sinks to queue them for.
            until: end of the summarised span, remembered per sink in the same
                transaction (see :meth:`telemetry_until`), so a crash neither skips
                nor repeats a window.
        """
        now = time.time()
        items = [
            (TELEMETRY, "", gateway, s.asset, s.end, encode_telemetry(s, gateway))
            for s in summaries
        ]
        self._put(items, sinks, now, until)

    def put_prognoses(self, prognoses: Sequence[tuple[str, float, bytes]], gateway: str) -> None:
        """Store encoded prognoses (``(asset, ts, body)``) for every sink, as telemetry rows.

        Periodic estimates are worth what telemetry is worth: behind alerts, dropped
        first when a backlog is over its bound, ``historical`` when late.
        """
        items = [(TELEMETRY, PROGNOSIS, gateway, asset, ts, body) for asset, ts, body in prognoses]
        self._put(items, self.sinks, time.time())

    def telemetry_until(self, sink: str) -> float | None:
        """End of the last span summarised for ``sink`` (None before the first)."""
        value = self._ledger.counters.get((sink, "telemetry_until"))
        return None if value is None else float(value)

    def _put(
        self,
        items: list[tuple[int, str, str, str, float, bytes]],
        sinks: Sequence[str],
        now: float,
        until: float | None = None,
        alerts: Sequence[Alert] = (),
    ) -> None:
        if not items and until is None:
            return
        drops: dict[str, dict[str, int]] = {}
        with self._tx():
            alert_state.record(self._db, alerts)
            for sink in sinks:
                if until is not None:
                    self._ledger.set(sink, "telemetry_until", int(until))
                self._insert(sink, items, now)
                dropped = self._ledger.enforce(sink, self._inflight.get(sink, set()))
                if dropped:
                    drops[sink] = dropped
        for sink, dropped in drops.items():
            what = ", ".join(f"{n} {label}" for label, n in dropped.items())
            log.error(
                "outbox: %s backlog over its bound (%d rows, %d bytes): dropped %s",
                sink, self.config.max_rows, self.config.max_size, what,
            )  # fmt: skip

    def _insert(
        self, sink: str, items: list[tuple[int, str, str, str, float, bytes]], now: float
    ) -> None:
        # seq counts this sink's messages without gaps: a consumer that sees one
        # missing knows a message was lost (a drop is also announced by a notice).
        first = self._ledger.value(sink, "seq") + 1
        self._db.executemany(
            "INSERT INTO rows (sink, cls, state, gateway, asset, ts, created, size, body, seq)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (sink, cls_, state, gw, asset, ts, now, len(body) + ROW_OVERHEAD, body, first + i)
                for i, (cls_, state, gw, asset, ts, body) in enumerate(items)
            ],
        )
        if items:
            self._ledger.set(sink, "seq", first + len(items) - 1)
        for cls_, *_, body in items:
            self._ledger.added(sink, cls_, len(body) + ROW_OVERHEAD)

    # -- take / ack / keep / reject ----------------------------------------

    def take(self, sink: str, limit: int, now: float | None = None) -> list[Record]:
        """The next batch for ``sink``: a pending drop notice, then alerts, then telemetry.

        Rows already taken and not yet settled are skipped, so a delivery loop may
        take the next batch while the previous one is in flight. Each row stays in
        the outbox until :meth:`ack` or :meth:`reject`.
        """
        now = time.time() if now is None else now
        inflight = self._inflight.setdefault(sink, set())
        after = self._after.setdefault(sink, {})
        rows: list[tuple[int, int, str, str, float, int, bytes, int, str]] = []
        for cls_ in CLASSES:
            # Taken rows of a class are a prefix of it (oldest first), so the rest
            # of the class lies above the highest id taken so far.
            rows += self._db.execute(
                "SELECT id, cls, gateway, asset, ts, size, body, coalesce(seq, id), state"
                " FROM rows"
                " WHERE sink = ? AND cls = ? AND id > ? ORDER BY id LIMIT ?",
                (sink, cls_, after.get(cls_, 0), limit - len(rows)),
            ).fetchall()
            if len(rows) >= limit:
                break
        batch = [self._record(row, now) for row in rows]
        for record in batch:
            inflight.add(record.row)
            after[record.cls] = max(after.get(record.cls, 0), record.row)
        notice = self._pending_notice(sink, batch, now)
        return [notice, *batch] if notice else batch

    def _record(
        self, row: tuple[int, int, str, str, float, int, bytes, int, str], now: float
    ) -> Record:
        row_id, cls_, gateway, asset, ts, size, body, seq, state = row
        if cls_ == TELEMETRY and now - ts > self.config.historical_after:
            body = with_fields(body, seq=seq, historical=True)
        else:
            body = with_fields(body, seq=seq)
        kind = state if state in (NOTICE, PROGNOSIS) else CLASSES[cls_]
        return Record(row_id, kind, gateway, asset, body, size, cls_)

    def _pending_notice(self, sink: str, batch: list[Record], now: float) -> Record | None:
        totals = tuple(self._ledger.value(sink, f"dropped_{c}") for c in CLASSES.values())
        told = tuple(self._ledger.value(sink, f"announced_{c}") for c in CLASSES.values())
        if totals == told:
            self._notice.pop(sink, None)
            return None
        if self._notice.get(sink) == totals:
            return None  # already in a batch in flight
        self._notice[sink] = totals
        gateway = batch[0].gateway if batch else self._last_gateway(sink)
        by = dict(zip(CLASSES.values(), totals, strict=True))
        body = encode_notice(gateway, by["alert"], by["telemetry"], now, by["command"])
        return Record(0, "notice", gateway, "", body)

    def _last_gateway(self, sink: str) -> str:
        row = self._db.execute("SELECT gateway FROM rows ORDER BY id DESC LIMIT 1").fetchone()
        return str(row[0]) if row else ""

    def ack(self, sink: str, batch: Sequence[Record]) -> None:
        """Delivered: delete the rows (and note a notice as announced)."""
        with self._tx():
            self._remove(sink, batch)

    def reject(self, sink: str, batch: Sequence[Record]) -> None:
        """Refused upstream: delete the rows and count them as ``rejected``."""
        with self._tx():
            self._remove(sink, batch)
            self._ledger.count(sink, "rejected", sum(1 for r in batch if r.row))

    def keep(self, sink: str, batch: Sequence[Record]) -> None:
        """Not delivered: the rows stay, to be taken again, oldest first.

        Every row of ``sink`` in flight goes back, not only ``batch``: a later batch
        must not overtake this one.
        """
        self._inflight.pop(sink, None)
        self._after.pop(sink, None)
        self._notice.pop(sink, None)

    def _remove(self, sink: str, batch: Sequence[Record]) -> None:
        for cls_ in CLASSES:
            self._ledger.delete(sink, cls_, [(r.row, r.size) for r in batch if r.cls == cls_])
        if any(r.kind == NOTICE and not r.row for r in batch) and sink in self._notice:
            for cls_name, total in zip(CLASSES.values(), self._notice.pop(sink), strict=True):
                name = f"announced_{cls_name}"
                self._ledger.count(sink, name, total - self._ledger.value(sink, name))
        inflight = self._inflight.get(sink, set())
        inflight.difference_update(r.row for r in batch)
        if not inflight:
            self._after.pop(sink, None)

    # -- status ------------------------------------------------------------

    def status(self) -> OutboxStatus:
        """Backlog per sink and class (rows, bytes, oldest), and the counters."""
        return read_status(self._db)
