"""Open alerts and alert history, behind one small interface (:class:`AlertView`).

Today the detector keeps the open alerts in memory and writes them to
``open-alerts.json``; the outbox keeps alert events only until every sink has
them. So:

* :class:`LiveAlerts` (in the agent) asks the detector, on the worker thread,
  for its open alerts, and keeps the last ``web.alert_history`` raise/clear
  events in memory (:class:`AlertLog`) for ``?state=all``.
* :class:`AlertLog` also writes, after each event, ``open-alerts.json`` (the
  file the agent already writes at stop) and appends the event to
  ``alert-history.jsonl`` (cut back to the limit when it reaches twice that), so
* :class:`StoredAlerts` (the CLI, beside a running agent, without its secrets)
  reads the same two files.

Limit: history holds the last ``alert_history`` events (default 500), not every
alert ever raised. When open alerts move into the outbox database (a table
written in the same transaction as the events) both views become one class
reading that table.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from edge_agent.detect.detector import Detector, save_open_alerts
from edge_agent.stages import Observer, to_the_end
from edge_agent.types import Alert, AlertState, Sample

log = logging.getLogger(__name__)
Run = Callable[..., Awaitable[Any]]

OPEN_FILE = "open-alerts.json"
HISTORY_FILE = "alert-history.jsonl"


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


class AlertLog:
    """The last ``limit`` alert events, in memory and in ``alert-history.jsonl``.

    It is an observer of the detector loop (``on_alerts`` on the event loop);
    :meth:`persist_forever` writes the files on the worker thread after each event.
    Another observer (the demo's screen) can be chained behind it as ``forward``.
    """

    def __init__(self, folder: Path, limit: int, forward: Observer | None = None) -> None:
        self.folder = folder
        self.limit = limit
        self.forward = forward
        self.events: deque[Alert] = deque(maxlen=limit)
        self._unsaved: list[Alert] = []
        self._changed = asyncio.Event()

    def load(self) -> None:
        """Read the events kept by the last run (blocking: call on the worker thread)."""
        self.events.extend(read_history(self.folder / HISTORY_FILE, self.limit))

    def on_samples(self, batch: Sequence[Sample]) -> None:
        """Observer hook: samples go on to ``forward`` (the demo's screen), if any."""
        if self.forward is not None:
            self.forward.on_samples(batch)

    def on_alerts(self, alerts: Sequence[Alert]) -> None:
        """Observer hook: remember the events; the files follow on the worker thread."""
        self.events.extend(alerts)
        self._unsaved.extend(alerts)
        self._changed.set()
        if self.forward is not None:
            self.forward.on_alerts(alerts)

    async def persist_forever(self, run: Run, detector: Detector) -> None:
        """After each batch of events, write both files on the worker thread.

        At stop, events not yet written are written before the task ends.
        """
        failing = False
        try:
            while True:
                await self._changed.wait()
                self._changed.clear()
                failing = await self._write(run, detector, failing)
        except asyncio.CancelledError:
            if self._unsaved:
                await to_the_end(self._write(run, detector, failing))
            raise

    async def _write(self, run: Run, detector: Detector, failing: bool) -> bool:
        """Write what is unsaved; returns whether writing fails (logged once per outage)."""
        batch, self._unsaved = self._unsaved, []
        try:
            await run(self._persist, batch, detector)
        except OSError as exc:
            if not failing:
                log.error("web: cannot write the alert files in %s: %s", self.folder, exc)
            return True
        return False

    def _persist(self, batch: list[Alert], detector: Detector) -> None:
        save_open_alerts(detector, self.folder / OPEN_FILE)
        append_history(self.folder / HISTORY_FILE, batch, self.limit)


def append_history(path: Path, events: Sequence[Alert], limit: int) -> None:
    """Append events; when the file holds ``2 * limit`` lines, keep the last ``limit``."""
    with path.open("a", encoding="utf-8") as file:
        for event in events:
            file.write(json.dumps(event.to_dict()) + "\n")
    with path.open("rb") as file:
        lines = sum(1 for _ in file)
    if lines >= 2 * limit:
        kept = read_history(path, limit)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(a.to_dict()) + "\n" for a in kept), encoding="utf-8")
        tmp.replace(path)


def read_history(path: Path, limit: int) -> list[Alert]:
    """The last ``limit`` events of a history file (none if missing; bad lines skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    events = []
    for line in lines[-limit:]:
        try:
            events.append(Alert.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash mid-write
    return events


class LiveAlerts:
    """The agent's view: open alerts from the detector, history from the log."""

    def __init__(self, detector: Detector, log_: AlertLog, run: Run) -> None:
        self.detector = detector
        self.log = log_
        self.run = run

    async def open(self) -> list[Alert]:
        """Asks the detector on the worker thread (it belongs to that thread)."""
        alerts: list[Alert] = await self.run(self.detector.open_alerts)
        return alerts

    async def history(self) -> list[Alert]:
        """The events in memory."""
        return list(self.log.events)


class StoredAlerts:
    """The data folder's view (the CLI): the files :class:`AlertLog` keeps."""

    def __init__(self, folder: Path, limit: int = 100_000) -> None:
        self.folder = folder
        self.limit = limit

    async def open(self) -> list[Alert]:
        """The alerts in ``open-alerts.json`` (as of the last event or stop)."""
        path = self.folder / OPEN_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        return [Alert.from_dict(item) for item in data]

    async def history(self) -> list[Alert]:
        """The events in ``alert-history.jsonl``."""
        return read_history(self.folder / HISTORY_FILE, self.limit)
