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
from collections.abc import Callable, Iterable
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
    """Connect, poll every ``config.interval``, and reconnect after any loss, forever.

    A link counts as up after its first good read, not at connect: a peer that
    accepts the connection and then fails every read (a frozen PLC, a gateway at
    its connection limit) still gets the exponential backoff and one log line.
    """
    link = _Link(source.config.name, stats)
    backoff = _backoff(source.config, cap)
    while True:
        try:
            async with source:
                await _poll_ticks(source, emit, stats, lambda: link.up(backoff))
        except SourceError as exc:
            link.lost(exc)
        except Exception as exc:  # top of a *_forever loop: keep polling, say why loudly
            log.exception("%s: unexpected error in poll loop", source.config.name)
            link.lost(exc)
        stats.connected = False
        await _pause(source, backoff.next_delay())


def _backoff(config: Any, cap: float) -> Backoff:
    """The reconnect backoff: the source's ``backoff``/``backoff_max`` keys, if it has them."""
    initial = float(getattr(config, "backoff", min(1.0, cap)))
    return Backoff(initial=initial, cap=float(getattr(config, "backoff_max", cap)))


async def _pause(source: Source, delay: float) -> None:
    """Wait before reconnecting; a source with ``pause()`` may end the wait early.

    OPC UA's ends it when a server that refused connections listens again, so the
    first try after a restart does not wait out a long backoff.
    """
    pause = getattr(source, "pause", None)
    if pause is None:
        await asyncio.sleep(delay)
    else:
        await pause(delay)


class _Link:
    """Logs a source's link transitions once each: lost, then back after N seconds."""

    def __init__(self, name: str, stats: PollStats) -> None:
        self.name = name
        self.stats = stats
        self.down_since: float | None = None
        self.ever_up = False

    def up(self, backoff: Backoff) -> None:
        self.stats.connected = True
        backoff.reset()
        if self.down_since is not None:
            log.warning(
                "%s: reconnected after %.0f s", self.name, time.monotonic() - self.down_since
            )
        elif not self.ever_up:
            log.info("%s: connected", self.name)
        self.down_since = None
        self.ever_up = True

    def lost(self, exc: BaseException) -> None:
        if self.down_since is None:
            self.stats.outages += 1
            log.warning("%s: connection lost: %s", self.name, exc)
            self.down_since = time.monotonic()
        else:
            log.debug("%s: still down: %s", self.name, exc)


async def _poll_ticks(
    source: Source,
    emit: Callable[[list[Sample]], None],
    stats: PollStats,
    first_read: Callable[[], None],
) -> None:
    loop = asyncio.get_running_loop()
    interval = float(source.config.interval)
    next_tick = loop.time()
    while True:
        samples = await source.read()
        if _cancel_was_swallowed():
            raise asyncio.CancelledError
        if not stats.connected:
            first_read()
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


def _cancel_was_swallowed() -> bool:
    """True when a cancel reached us but a library's ``wait_for`` ate it.

    On Python 3.11 ``asyncio.wait_for`` (pymodbus waits for every reply with it)
    loses a cancellation that arrives together with the reply (CPython issue
    86296, fixed in 3.12): the poll loop would run on after SIGTERM.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Schedule:
    """Which poll intervals are due at a tick, without drift.

    The source's poll loop ticks every ``tick`` seconds and every tick reads
    the signals at that interval; a group with a longer interval is due on the
    tick nearest its next due time (half a tick of slack absorbs the jitter of
    the loop).
    """

    def __init__(self, intervals: Iterable[float], tick: float) -> None:
        self.tick = tick
        self._next: dict[float, float | None] = dict.fromkeys(sorted(set(intervals)))

    def due(self, now: float) -> tuple[float, ...]:
        """The intervals due at ``now`` (monotonic seconds); advances them."""
        slack = self.tick / 2
        due: list[float] = []
        for interval, at in self._next.items():
            if at is not None and now < at - slack and interval > self.tick:
                continue
            due.append(interval)
            following = now + interval if at is None else at + interval
            self._next[interval] = following if following > now - slack else now + interval
        return tuple(due)
