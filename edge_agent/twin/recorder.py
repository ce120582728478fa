"""The recorder: the async shell that hands polled samples to the twin and the windows.

Writes run on the agent's single worker thread; while the twin refuses writes (disk
full) the samples are held in memory up to :data:`MAX_RETRY_SAMPLES`, then counted lost.

A flush comes every ``flush_interval``, or as soon as :data:`FLUSH_BATCH` samples are
waiting. The write holds the GIL for most of its ~0.8 us per sample, much of it in
single C calls over the whole batch that the event loop cannot interrupt: at
100,000 tags/s a 1 s batch blocked the loop for tens of milliseconds and 100 ms
ticks were skipped (4-11 in 30 s); batches of 20,000 kept every tick at the same
CPU per sample and 25 MB less peak RSS (BENCHMARKS.md).

The poll loops' lists are kept as they come and joined on the worker thread
into one list of the batch's size. Extending one list in the event loop grew it
by ~10 reallocations per flush to 160 KB (2,000 tags @ 100 ms), interleaved with
the loop's other allocations; each flush left holes of a different size in the
C heap, and the soak's RSS crept for many minutes (:mod:`edge_agent.heap`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from edge_agent.errors import AgentError
from edge_agent.logs import Transition
from edge_agent.observer import Observer, tell
from edge_agent.twin.store import SignalStore
from edge_agent.twin.windows import Windows
from edge_agent.types import Sample
from edge_agent.worker import Worker, to_the_end

log = logging.getLogger(__name__)


MAX_RETRY_SAMPLES = 200_000
FLUSH_BATCH = 20_000
"""Samples waiting that bring the next flush forward (see the module docstring)."""
MAX_WAITING_SAMPLES = 200_000
"""Samples waiting for a flush beyond which the oldest are dropped and counted.

A flush that never comes (a worker stuck on a hung disk, a recorder already stopped
while a source still emits) must not grow the agent without bound: a source that
lost the stop's cancel once grew one by 8 MB/s at 10,000 signals (CHANGELOG, Fixed).
At 100,000 samples/s this is two seconds of data, ten flush batches.
"""


@dataclass
class Recorder:
    """Collects polled samples and writes them in one transaction per flush interval."""

    store: SignalStore
    windows: Windows
    worker: Worker
    flush_interval: float
    observer: Observer | None = None
    pending: deque[list[Sample]] = field(default_factory=deque)
    """The lists passed to :meth:`accept` since the last flush, as they came (a deque:
    :meth:`_drop_oldest` takes from the front, one list per call or a whole backlog)."""
    waiting: int = 0
    """Samples in ``pending``."""
    retry: list[Sample] = field(default_factory=list)
    written: int = 0
    dropped: int = 0
    """Samples dropped unwritten because no flush took them (:data:`MAX_WAITING_SAMPLES`)."""
    health: Transition = field(default_factory=lambda: Transition(log))
    write_errors: int = 0  # failed flushes (EIO, read-only, locked): each one retried
    due: asyncio.Event = field(default_factory=asyncio.Event)
    _dropping: bool = False

    def accept(self, samples: list[Sample]) -> None:
        """Called by the poll loops: buffer only, never block.

        The list is kept, not copied: the caller hands it over and must not change it.
        """
        self.pending.append(samples)
        self.waiting += len(samples)
        if self.waiting >= FLUSH_BATCH:
            self.due.set()
            if self.waiting > MAX_WAITING_SAMPLES:
                self._drop_oldest()
        if self.observer is not None:
            tell(self.observer.on_samples, samples)

    def _drop_oldest(self) -> None:
        """Keep at most :data:`MAX_WAITING_SAMPLES` waiting: the oldest lists go, counted."""
        if not self._dropping:
            log.error(
                "twin: no flush for %d samples: the oldest are dropped until one", self.waiting
            )
            self._dropping = True
        while self.waiting > MAX_WAITING_SAMPLES and len(self.pending) > 1:
            gone = len(self.pending.popleft())
            self.waiting -= gone
            self.dropped += gone

    async def record_forever(self) -> None:
        """Flush every ``flush_interval`` or at a full batch; on cancellation flush what is left."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.flush_interval):
                        await self.due.wait()
                self.due.clear()
                await self.flush()
        except asyncio.CancelledError:
            await self.flush()
            raise

    async def flush(self) -> None:
        """Write the buffered samples to the windows and the twin."""
        chunks, self.pending, self.waiting = self.pending, deque(), 0
        if self._dropping:
            self._dropping = False
            log.warning("twin: flushing again, %d samples dropped unwritten so far", self.dropped)
        if chunks or self.retry:
            await to_the_end(self.worker.run(self._write, chunks))

    def _write(self, chunks: Sequence[list[Sample]]) -> None:
        batch = joined(chunks)
        # Windows first: detection goes on even while the twin refuses writes.
        self.windows.append(batch)
        todo, self.retry = (self.retry + batch if self.retry else batch), []
        try:
            self.store.write(todo)
        except AgentError as exc:  # locked or broken file: keep the batch, try again next flush
            self._hold(todo, exc)
            return
        # A full disk does not raise: the store keeps latest values and counts what it dropped.
        full = self.store.health.full
        if not full:
            self.written += len(todo)
        if full:
            # The store logs a full disk itself (once); this only tracks the state.
            self.health.fail("twin: full", level=logging.DEBUG)
        else:
            self.health.ok("twin: writing again (%d failed flushes so far)", self.write_errors)

    def _hold(self, todo: list[Sample], exc: Exception) -> None:
        self.retry = todo[-MAX_RETRY_SAMPLES:]
        self.write_errors += 1
        lost = len(todo) - len(self.retry)
        self.health.fail("twin: cannot write samples, holding them in memory: %s", exc)
        if lost:
            log.error("twin: %d samples lost, more than %d held", lost, MAX_RETRY_SAMPLES)

    @property
    def failing(self) -> bool:
        """True while writes to the twin fail (status and metrics read it)."""
        return self.health.failing


def joined(chunks: Sequence[list[Sample]]) -> list[Sample]:
    """The chunks in one list, allocated once at its final size (no growth by reallocation)."""
    if len(chunks) == 1:
        return chunks[0]
    batch: list[Sample | None] = [None] * sum(map(len, chunks))
    start = 0
    for chunk in chunks:
        batch[start : start + len(chunk)] = chunk
        start += len(chunk)
    return batch  # type: ignore[return-value]  # every slot filled above
