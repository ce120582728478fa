"""The poll loop every source runs in: a drift-free schedule, skips, reconnects.

Ticks are scheduled on ``loop.time()`` so intervals do not drift. A read that
overruns its interval makes the missed ticks be skipped and counted, never
queued (a peer that starts a new poll before the last one ends was measured
piling up memory). A lost link (``SourceError``) leaves the source's context,
backs off with jitter and re-enters; the outage is logged once and the
recovery once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

from edge_agent.backoff import Backoff
from edge_agent.errors import SourceError
from edge_agent.types import Sample, SignalInfo

log = logging.getLogger(__name__)


class Source(Protocol):
    """What the poll loop needs of a source (see DESIGN.md, Interfaces)."""

    @property
    def config(self) -> Any: ...

    def signals(self) -> list[SignalInfo]: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def read(self) -> list[Sample]: ...


@dataclass
class PollStats:
    """Counters of one source's poll loop, for status and metrics."""

    reads: int = 0
    samples: int = 0
    skipped_ticks: int = 0
    outages: int = 0
    connected: bool = False


async def poll_forever(
    source: Source, emit: Callable[[list[Sample]], None], stats: PollStats, cap: float = 60.0
) -> None:
    """Connect, poll every ``config.interval``, and reconnect after any loss, forever."""
    name = source.config.name
    backoff = Backoff(initial=min(1.0, cap), cap=cap)
    down_since: float | None = None
    while True:
        try:
            async with source:
                stats.connected = True
                if down_since is not None:
                    log.warning("%s: reconnected after %.0f s", name, time.monotonic() - down_since)
                else:
                    log.info("%s: connected", name)
                down_since = None
                backoff.reset()
                await _poll_ticks(source, emit, stats)
        except SourceError as exc:
            down_since = _note_outage(name, exc, down_since, stats)
        except Exception as exc:  # top of a *_forever loop: keep polling, say why loudly
            log.exception("%s: unexpected error in poll loop", name)
            down_since = _note_outage(name, exc, down_since, stats)
        stats.connected = False
        await asyncio.sleep(backoff.next_delay())


def _note_outage(
    name: str, exc: BaseException, down_since: float | None, stats: PollStats
) -> float:
    if down_since is None:
        stats.outages += 1
        log.warning("%s: connection lost: %s", name, exc)
        return time.monotonic()
    log.debug("%s: still down: %s", name, exc)
    return down_since


async def _poll_ticks(
    source: Source, emit: Callable[[list[Sample]], None], stats: PollStats
) -> None:
    loop = asyncio.get_running_loop()
    interval = float(source.config.interval)
    next_tick = loop.time()
    while True:
        samples = await source.read()
        stats.reads += 1
        stats.samples += len(samples)
        if samples:
            emit(samples)
        next_tick += interval
        now = loop.time()
        if now > next_tick:
            missed = math.ceil((now - next_tick) / interval)
            stats.skipped_ticks += missed
            next_tick += missed * interval
            log.debug("%s: read overran, %d tick(s) skipped", source.config.name, missed)
        await asyncio.sleep(next_tick - now)
