"""The detector loop: the async shell that steps the detector and puts alerts in the outbox.

Steps run on the worker thread. Alerts the outbox refuses at stop are written to the
spill file (:mod:`edge_agent.forward.spill`) and re-queued at the next start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.detect.detector import Detector
from edge_agent.forward.outbox import Outbox
from edge_agent.forward.spill import write_spill
from edge_agent.observer import Observer, tell
from edge_agent.twin.recorder import Recorder
from edge_agent.twin.windows import Windows
from edge_agent.types import Alert, AlertState, Sample
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
    refusing: bool = False
    spill: Path | None = None

    async def detect_forever(self) -> None:
        """Step on a drift-free schedule; at stop, one last try for alerts not yet stored."""
        try:
            await self._steps()
        except asyncio.CancelledError:
            await self.put([])
            self._report_unsent()
            raise

    async def _steps(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            next_tick += self.interval
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            try:
                await self.step(time.time())
            except Exception:  # top of a *_forever loop: keep detecting
                log.exception("detector: step failed")
            next_tick = max(next_tick, loop.time())

    async def step(self, now: float) -> None:
        """One detection step: alerts stored first, then score/alarm/health to the twin."""
        alerts, derived = await to_the_end(self.worker.run(self._step, now))
        await self.put(alerts)
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
            if not self.refusing:
                log.error("outbox: cannot store alerts, holding them in memory: %s", exc)
            self.refusing = True
            return
        if self.refusing:
            log.warning("outbox: storing alerts again (%d held)", len(self.unsent))
        self.refusing = False
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

    def _step(self, now: float) -> tuple[list[Alert], list[Sample]]:
        alerts = self.detector.step(self.windows, now)
        return alerts, self.detector.samples()

    def _count(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            if alert.state == AlertState.RAISED:
                self.raised += 1
            else:
                self.cleared += 1
            log.info("alert %s %s %s: %s", alert.state, alert.asset, alert.cause, alert.reason)
