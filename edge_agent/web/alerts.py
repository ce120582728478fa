"""Open alerts and alert history, behind one small interface (:class:`AlertView`).

Both live in the outbox file (:mod:`edge_agent.forward.alert_state`), written in the
same transaction as each raise and clear, so the page, the API and the CLI read the
same truth a restart restores:

* :class:`OutboxAlerts` (in the agent) asks the agent's outbox on the worker thread;
* :class:`StoredAlerts` (the CLI, beside a running agent, without its secrets) opens
  ``outbox.db`` read-only.

``?state=all`` lists the latest ``web.alert_history`` events; the outbox keeps the
last :data:`~edge_agent.forward.alert_state.LOG_ROWS`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from edge_agent.errors import StorageError
from edge_agent.forward import alert_state
from edge_agent.forward.outbox import Outbox
from edge_agent.types import Alert, AlertState

log = logging.getLogger(__name__)
Run = Callable[..., Awaitable[Any]]


class AlertView(Protocol):
    """Where the API and the CLI read alerts from."""

    async def open(self) -> list[Alert]:
        """The raise events of the alerts open now."""
        ...

    async def history(self) -> list[Alert]:
        """Recent raise and clear events, oldest first (bounded; see the module docstring)."""
        ...


def episodes(events: Iterable[Alert], open_ids: set[str]) -> list[dict[str, Any]]:
    """One record per alert episode (its raise and its clear joined by id), newest first."""
    found: dict[str, dict[str, Any]] = {}
    for event in events:
        record = found.setdefault(event.id, alert_record(event, event.id in open_ids))
        if event.state is AlertState.RAISED:
            record["raised_at"] = event.window_end
        else:
            record["cleared_at"] = event.window_end
            record["state"] = "cleared" if event.id not in open_ids else "open"
    return sorted(found.values(), key=lambda r: r["raised_at"] or r["cleared_at"], reverse=True)


def alert_record(alert: Alert, is_open: bool) -> dict[str, Any]:
    """The API's shape of one alert (``state`` is ``open`` or ``cleared``)."""
    raised = alert.window_end if alert.state is AlertState.RAISED else None
    return {
        "id": alert.id,
        "asset": alert.asset,
        "kind": str(alert.kind),
        "cause": alert.cause,
        "severity": str(alert.severity),
        "state": "open" if is_open else "cleared",
        "raised_at": raised,
        "cleared_at": None if is_open or raised is not None else alert.window_end,
        "window_start": alert.window_start,
        "window_end": alert.window_end,
        "reason": alert.reason,
        "signals": list(alert.signals),
        "score": alert.score,
        "threshold": alert.threshold,
    }


async def listing(view: AlertView, everything: bool) -> list[dict[str, Any]]:
    """Open alerts, newest first; with ``everything`` every kept episode, open or cleared."""
    opened = await view.open()
    if not everything:
        records = [alert_record(a, True) for a in opened]
        return sorted(records, key=lambda r: r["raised_at"] or 0.0, reverse=True)
    events = await view.history()
    known = {e.id for e in events}
    # An alert restored from before a restart may be open with its raise no longer kept.
    return episodes([*[a for a in opened if a.id not in known], *events], {a.id for a in opened})


class OutboxAlerts:
    """The agent's view: the open-alert state and the alert log of its outbox."""

    def __init__(self, outbox: Outbox, run: Run, limit: int = 500) -> None:
        self.outbox = outbox
        self.run = run
        self.limit = limit

    async def open(self) -> list[Alert]:
        """Asks the outbox on the worker thread (it belongs to that thread)."""
        alerts: list[Alert] = await self.run(self.outbox.open_alerts)
        return alerts

    async def history(self) -> list[Alert]:
        """The latest events, oldest first."""
        events: list[Alert] = await self.run(self.outbox.alert_history, self.limit)
        return events[::-1]


class StoredAlerts:
    """The data folder's view (the CLI): the running agent's outbox file, read-only."""

    def __init__(self, db: Path, limit: int = 100_000) -> None:
        self.db = db
        self.limit = limit

    async def open(self) -> list[Alert]:
        """The alerts open as last stored (none before the agent's first start)."""
        return self._read(alert_state.open_alerts)

    async def history(self) -> list[Alert]:
        """The stored events, oldest first."""
        return self._read(lambda db: alert_state.history(db, self.limit))[::-1]

    def _read(self, query: Callable[[sqlite3.Connection], list[Alert]]) -> list[Alert]:
        if not self.db.exists():
            return []
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5.0)
        try:
            return query(db)
        except sqlite3.OperationalError as exc:  # a file from before the alert tables
            log.debug("no alert state in %s: %s", self.db, exc)
            return []
        except sqlite3.DatabaseError as exc:  # damaged: say so, as the twin's reader does
            raise StorageError(f"outbox {self.db}: cannot read alerts: {exc}") from exc
        finally:
            db.close()
