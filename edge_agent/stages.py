"""The thin async shells around the synchronous stages: the recorder and the detector loop.

Everything blocking (SQLite, inference) runs on the agent's single worker thread
(:class:`Worker`), so the twin, the windows, the detector and the outbox are
only ever touched from that one thread and need no locks. A job handed to the
worker is awaited to its end even when the agent is being stopped
(:func:`to_the_end`): the samples or alerts it carries must not vanish.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from edge_agent.detect.detector import Detector
from edge_agent.errors import AgentError
from edge_agent.forward.outbox import Outbox
from edge_agent.twin.store import SignalStore
from edge_agent.twin.windows import Windows
from edge_agent.types import Alert, AlertState, Sample

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_RETRY_SAMPLES = 200_000
"""Samples the recorder holds for the twin while it refuses writes (about 20 MB)."""


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


async def to_the_end(job: Awaitable[T]) -> T:
    """Await ``job`` to its end even if we are cancelled meanwhile, then re-raise the cancel.

    A plain ``await worker.run(...)`` that is cancelled while the job still waits
    behind another one drops the job: a batch of samples or alerts would be lost.
    """
    future = asyncio.ensure_future(job)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await future
        raise


class Observer(Protocol):
    """Optional watcher of the flow (the demo's screen); called on the event loop."""

    def on_samples(self, batch: Sequence[Sample]) -> None: ...

    def on_alerts(self, alerts: Sequence[Alert]) -> None: ...


def _tell(hook: Callable[[Any], None], items: Sequence[Any]) -> None:
    """Call an observer hook; a bug in a watcher must not stop the flow it watches."""
    try:
        hook(items)
    except Exception:
        log.exception("observer %s failed", getattr(hook, "__qualname__", hook))


@dataclass
class Recorder:
    """Collects polled samples and writes them in one transaction per flush interval."""

    store: SignalStore
    windows: Windows
    worker: Worker
    flush_interval: float
    observer: Observer | None = None
    pending: list[Sample] = field(default_factory=list)
    retry: list[Sample] = field(default_factory=list)
    written: int = 0
    failing: bool = False
    write_errors: int = 0  # failed flushes (EIO, read-only, locked): each one retried

    def accept(self, samples: list[Sample]) -> None:
        """Called by the poll loops: buffer only, never block."""
        self.pending.extend(samples)
        if self.observer is not None:
            _tell(self.observer.on_samples, samples)

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
        """Write the buffered samples to the windows and the twin."""
        batch, self.pending = self.pending, []
        if batch or self.retry:
            await to_the_end(self.worker.run(self._write, batch))

    def _write(self, batch: list[Sample]) -> None:
        # Windows first: detection goes on even while the twin refuses writes.
        self.windows.append(batch)
        todo, self.retry = self.retry + batch, []
        try:
            self.store.write(todo)
        except AgentError as exc:  # locked or broken file: keep the batch, try again next flush
            self._hold(todo, exc)
            return
        # A full disk does not raise: the store keeps latest values and counts what it dropped.
        full = self.store.health.full
        if not full:
            self.written += len(todo)
        if self.failing and not full:
            log.warning("twin: writing again (%d failed flushes so far)", self.write_errors)
        self.failing = full

    def _hold(self, todo: list[Sample], exc: Exception) -> None:
        self.retry = todo[-MAX_RETRY_SAMPLES:]
        self.write_errors += 1
        lost = len(todo) - len(self.retry)
        if not self.failing:
            log.error("twin: cannot write samples, holding them in memory: %s", exc)
        if lost:
            log.error("twin: %d samples lost, more than %d held", lost, MAX_RETRY_SAMPLES)
        self.failing = True


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
                _tell(self.observer.on_alerts, alerts)

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


def write_spill(path: Path, alerts: Sequence[Alert]) -> None:
    """Write alerts the outbox refused to ``path`` (JSON, atomically, added to what is there)."""
    kept = read_spill(path) + list(alerts)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps([a.to_dict() for a in kept]) + "\n")
    tmp.replace(path)


def read_spill(path: Path) -> list[Alert]:
    """The alerts in a spill file; none when it does not exist."""
    try:
        return [Alert.from_dict(d) for d in json.loads(path.read_text())]
    except FileNotFoundError:
        return []


def requeue_spill(path: Path, outbox: Outbox, gateway: str) -> int:
    """At start: put spilled alerts into the outbox (before any new one), then remove the file."""
    alerts = read_spill(path)
    if alerts:
        outbox.put_alerts(alerts, gateway)
        log.warning("re-queued %d alert(s) the outbox refused before the last stop", len(alerts))
    path.unlink(missing_ok=True)
    return len(alerts)
