"""The thin async shells around the synchronous stages: the recorder and the detector loop.

Everything blocking (SQLite, inference) runs on the agent's single worker thread
(:class:`Worker`), so the twin, the windows, the detector and the outbox are
only ever touched from that one thread and need no locks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from edge_agent.detect.detector import Detector
from edge_agent.forward.outbox import Outbox
from edge_agent.twin.store import SignalStore
from edge_agent.twin.windows import Windows
from edge_agent.types import Alert, Sample

log = logging.getLogger(__name__)
T = TypeVar("T")


class Worker:
    """One thread for every blocking call: SQLite connections stay on one thread."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="edge-db")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the worker thread and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Wait for the running call, then stop the thread."""
        self._pool.shutdown(wait=True)


class Observer(Protocol):
    """Optional watcher of the flow (the demo's screen); called on the event loop."""

    def on_samples(self, batch: Sequence[Sample]) -> None: ...

    def on_alerts(self, alerts: Sequence[Alert]) -> None: ...


@dataclass
class Recorder:
    """Collects polled samples and writes them in one transaction per flush interval."""

    store: SignalStore
    windows: Windows
    worker: Worker
    flush_interval: float
    observer: Observer | None = None
    pending: list[Sample] = field(default_factory=list)
    written: int = 0
    failing: bool = False

    def accept(self, samples: list[Sample]) -> None:
        """Called by the poll loops: buffer only, never block."""
        self.pending.extend(samples)
        if self.observer is not None:
            self.observer.on_samples(samples)

    async def record_forever(self) -> None:
        """Flush every ``flush_interval``; on cancellation flush what is left, then stop."""
        try:
            while True:
                await asyncio.sleep(self.flush_interval)
                await self.flush()
        except asyncio.CancelledError:
            await self.flush()
            raise

    async def flush(self) -> None:
        """Write the buffered samples to the twin and the windows."""
        batch, self.pending = self.pending, []
        if not batch:
            return
        try:
            await self.worker.run(self._write, batch)
        except Exception as exc:  # a full disk must not stop polling or detection
            if not self.failing:
                log.error("twin: cannot write samples, keeping them in memory only: %s", exc)
            self.failing = True
            return
        if self.failing:
            log.warning("twin: writing again")
            self.failing = False

    def _write(self, batch: list[Sample]) -> None:
        # Windows first: detection goes on even while the disk refuses writes.
        self.windows.append(batch)
        self.store.write(batch)
        self.written += len(batch)


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
    unsent: list[Alert] = field(default_factory=list)
    raised: int = 0
    cleared: int = 0

    async def detect_forever(self) -> None:
        """Step on a drift-free schedule; an outbox failure keeps the alerts for the next step."""
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

    recorder: Recorder | None = None

    async def step(self, now: float) -> None:
        """One detection step, its score/alarm/health samples to the twin, its alerts stored."""
        alerts, derived = await self.worker.run(self._step, now)
        if derived and self.recorder is not None:
            self.recorder.accept(derived)
        if alerts:
            self._count(alerts)
            if self.observer is not None:
                self.observer.on_alerts(alerts)
        await self.put(alerts)

    async def put(self, alerts: list[Alert]) -> None:
        """Store alerts durably; while the outbox refuses, hold them and say so loudly."""
        self.unsent.extend(alerts)
        if not self.unsent:
            return
        try:
            await self.worker.run(self.outbox.put_alerts, list(self.unsent), self.gateway)
        except Exception as exc:
            log.error(
                "outbox: cannot store %d alert(s), holding them in memory: %s",
                len(self.unsent),
                exc,
            )
            return
        self.unsent.clear()
        self.wake()

    def _step(self, now: float) -> tuple[list[Alert], list[Sample]]:
        alerts = self.detector.step(self.windows, now)
        return alerts, self.detector.samples()

    def _count(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            if alert.state == "raised":
                self.raised += 1
            else:
                self.cleared += 1
            log.info("alert %s %s %s: %s", alert.state, alert.asset, alert.cause, alert.reason)
