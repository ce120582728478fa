"""The detector loop: the async shell that steps the detector and puts alerts in the outbox.

Steps run on the worker thread. Alerts the outbox refuses at stop are written to the
spill file (:mod:`edge_agent.forward.spill`) and re-queued at the next start.

Operator requests (``edge-agent alerts ack|shelve|unshelve``, queued in the outbox
file by :mod:`edge_agent.detect.requests`) are taken at most once a second; their
events are stored with the step's alerts, and only then is a request marked done.

The detector's due prognoses (remaining life, :mod:`edge_agent.detect.prognosis`)
are queued in the outbox as ``prognosis`` messages on the worker thread, in the step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.detect import requests
from edge_agent.detect.detector import Detector
from edge_agent.forward.encode import encode_prognosis
from edge_agent.forward.outbox import Outbox
from edge_agent.forward.spill import write_spill
from edge_agent.logs import Transition
from edge_agent.observer import Observer, tell
from edge_agent.twin.recorder import Recorder
from edge_agent.twin.windows import Windows
from edge_agent.types import Alert, AlertState, Sample

if TYPE_CHECKING:
    from edge_agent.detect.prognosis import Prognosis
from edge_agent.worker import Worker, to_the_end

log = logging.getLogger(__name__)


@dataclass
class DetectorLoop:
    """Steps the detector every interval and puts its alerts into the outbox."""

    detector: Detector
    windows: Windows
    outbox: Outbox
    worker: Worker
    gateway: str
    interval: float
    wake: Callable[[], None]
    observer: Observer | None = None
    recorder: Recorder | None = None
    unsent: list[Alert] = field(default_factory=list)
    raised: int = 0
    cleared: int = 0
    storing: Transition = field(default_factory=lambda: Transition(log))
    spill: Path | None = None
    requests: Path | None = None
    updated: int = 0
    prognoses: int = 0
    prognosis_refused: bool = False
    _requests_db: sqlite3.Connection | None = None
    _requests_read: Transition = field(
        default_factory=lambda: Transition(log, fail_level=logging.WARNING)
    )
    _next_poll: float = 0.0
    stepping: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held through each step, its alerts' storing included: a reload swaps the detector
    while no alert is between the detector and the outbox."""

    async def detect_forever(self) -> None:
        """Step on a drift-free schedule; at stop, one last try for alerts not yet stored."""
        try:
            await self._steps()
        except asyncio.CancelledError:
            await self.put([])
            self._report_unsent()
            if self._requests_db is not None:
                self._requests_db.close()
            raise

    async def _steps(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            next_tick += self.interval
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            try:
                async with self.stepping:
                    await self.step(time.time())
            except Exception:  # top of a *_forever loop: keep detecting
                log.exception("detector: step failed")
            next_tick = max(next_tick, loop.time())

    async def step(self, now: float) -> None:
        """One detection step: alerts stored first, then score/alarm/health to the twin."""
        alerts, derived, done = await to_the_end(self.worker.run(self._step, now))
        await self.put(alerts)
        if done and not self.storing.failing:
            await to_the_end(self.worker.run(self._finish, done))
        if derived and self.recorder is not None:
            self.recorder.accept(derived)
        if alerts:
            self._count(alerts)
            if self.observer is not None:
                tell(self.observer.on_alerts, alerts)

    async def put(self, alerts: list[Alert]) -> None:
        """Store alerts durably; while the outbox refuses, hold them and say so once."""
        self.unsent.extend(alerts)
        if not self.unsent:
            return
        try:
            await to_the_end(
                self.worker.run(self.outbox.put_alerts, list(self.unsent), self.gateway)
            )
        except Exception as exc:
            self.storing.fail("outbox: cannot store alerts, holding them in memory: %s", exc)
            return
        self.storing.ok("outbox: storing alerts again (%d held)", len(self.unsent))
        self.unsent.clear()
        self.wake()

    def _report_unsent(self) -> None:
        """At stop: alerts the outbox refused go to the spill file, re-queued at the next start."""
        if not self.unsent:
            return
        try:
            if self.spill is None:
                raise OSError("no spill file configured")
            write_spill(self.spill, self.unsent)
            log.error("outbox refused %d alert(s): kept in %s", len(self.unsent), self.spill)
        except OSError as exc:
            # The journal is the last place left: name every lost alert in full.
            for alert in self.unsent:
                log.error("alert lost at shutdown (%s): %s", exc, json.dumps(alert.to_dict()))

    def _step(self, now: float) -> tuple[list[Alert], list[Sample], list[tuple[int, str]]]:
        alerts = self.detector.step(self.windows, now)
        self._put_prognoses(self.detector.prognoses())
        done: list[tuple[int, str]] = []
        if self.requests is not None and now >= self._next_poll:
            self._next_poll = now + 1.0
            done = self._apply_requests(now, alerts)
        return alerts, self.detector.samples(), done

    def _put_prognoses(self, prognoses: list[Prognosis]) -> None:
        """Queue the due prognoses (worker thread); a refusal loses them, said once."""
        if not prognoses:
            return
        items = [(p.asset, p.ts, encode_prognosis(p.to_dict(), self.gateway)) for p in prognoses]
        try:
            self.outbox.put_prognoses(items, self.gateway)
        except Exception as exc:  # a full disk: the next estimate comes within `every`
            if not self.prognosis_refused:
                log.error("outbox: cannot store prognoses, skipping them: %s", exc)
            self.prognosis_refused = True
            return
        if self.prognosis_refused:
            log.warning("outbox: storing prognoses again")
        self.prognosis_refused = False
        self.prognoses += len(items)

    def _apply_requests(self, now: float, alerts: list[Alert]) -> list[tuple[int, str]]:
        assert self.requests is not None
        try:
            if self._requests_db is None:
                self._requests_db = requests.connect(self.requests)
            pending = requests.pending(self._requests_db)
        except sqlite3.Error as exc:
            self._requests_read.fail("alert requests: cannot read %s: %s", self.requests, exc)
            return []
        self._requests_read.ok("alert requests: readable again")
        done = []
        for request in pending:
            event, result = self.detector.apply(request, now)
            if event is not None:
                alerts.append(event)
            log.info(
                "alert request %d (%s %s): %s", request.n, request.action, request.alert, result
            )
            done.append((request.n, result))
        return done

    def _finish(self, done: list[tuple[int, str]]) -> None:
        if self._requests_db is not None:
            requests.finish(self._requests_db, done)

    def _count(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            if alert.state == AlertState.RAISED:
                self.raised += 1
            elif alert.state == AlertState.CLEARED:
                self.cleared += 1
            else:
                self.updated += 1
            log.info("alert %s %s %s: %s", alert.state, alert.asset, alert.cause, alert.reason)
