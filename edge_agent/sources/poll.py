"""The poll loop every source runs in: a drift-free schedule, skips, reconnects.

Ticks are scheduled on ``loop.time()`` so intervals do not drift. A read that
overruns its interval makes the missed ticks be skipped and counted, never
queued (a peer that starts a new poll before the last one ends was measured
piling up memory). A lost link (``SourceError``) leaves the source's context,
backs off with jitter and re-enters; the outage is logged once and the
recovery once.

While a link is down its signals are marked BAD at once (the twin, rules and
live sinks see the outage within one interval), and then only every
``BAD_REPEAT`` seconds on the clock's grid, so every rollup minute of the outage
holds a BAD sample of each signal: marking them every interval made a dead
10,000-tag device at 100 ms cost 15-29 % of a core (BENCHMARKS.md). Each source also
reports its link as a signal of its own, ``link.<source>`` (1 up, 0 down, every
tick, up or down): the built-in "source down" rule watches it (see
``detect.source_down``), and the mean of its rollups is the link's availability.
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
from edge_agent.cancel import cancel_was_swallowed
from edge_agent.errors import SourceError
from edge_agent.logs import RateLimitedLog
from edge_agent.types import BAD_REPEAT, Quality, Sample, SignalInfo

log = logging.getLogger(__name__)

LINK = "link"
"""Source name of the link signals: ``link.<source>``."""


def link_signal(source: str) -> str:
    """The signal that reports ``source``'s link: 1.0 up, 0.0 down."""
    return f"{LINK}.{source}"


def link_info(source: Source) -> SignalInfo:
    """Catalogue entry of a source's link signal."""
    config = source.config
    asset = getattr(config, "asset", "") or config.name
    return SignalInfo(link_signal(config.name), LINK, float(config.interval), asset=asset)


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
    # For the site view: why the link was last lost, and when the last read went through.
    last_error: str = ""
    last_error_at: float | None = None
    last_read_at: float | None = None
    read_seconds: float = 0.0


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
    marks = _DownMarks(source)

    def first_read() -> None:
        link.up(backoff)
        marks.slot = None  # the next outage is marked at once

    while True:
        try:
            async with source:
                await _poll_ticks(source, emit, stats, first_read)
        except SourceError as exc:
            link.lost(exc)
        except Exception as exc:  # top of a *_forever loop: keep polling, say why loudly
            log.exception("%s: unexpected error in poll loop", source.config.name)
            link.lost(exc)
        stats.connected = False
        if cancel_was_swallowed():  # e.g. by the connect: the loop would back off forever
            raise asyncio.CancelledError
        await _wait_down(source, emit, marks, backoff.next_delay())


def _backoff(config: Any, cap: float) -> Backoff:
    """The reconnect backoff: the source's ``backoff``/``backoff_max`` keys, if it has them."""
    initial = float(getattr(config, "backoff", min(1.0, cap)))
    return Backoff(initial=initial, cap=float(getattr(config, "backoff_max", cap)))


async def _wait_down(
    source: Source, emit: Callable[[list[Sample]], None], marks: _DownMarks, delay: float
) -> None:
    """Wait before reconnecting, reporting the link down every interval meanwhile."""
    marking = asyncio.create_task(_mark_down_forever(source, emit, marks))
    try:
        await _pause(source, delay)
    finally:
        marking.cancel()
        await asyncio.gather(marking, return_exceptions=True)


async def _mark_down_forever(
    source: Source, emit: Callable[[list[Sample]], None], marks: _DownMarks
) -> None:
    interval = float(source.config.interval)
    while True:
        emit(marks.due(time.time()))
        await asyncio.sleep(interval)


class _DownMarks:
    """What a down source emits at a tick: its link at 0, and its signals BAD when due.

    They are due at the first tick of an outage and then at the first tick in each
    ``BAD_REPEAT`` slot of the clock (a reconnect that fails again does not mark
    them anew): the twin keeps them BAD, and each rollup minute counts the outage.
    """

    def __init__(self, source: Source) -> None:
        self.source = source
        self.link = link_signal(source.config.name)
        self.slot: int | None = None  # the BAD_REPEAT slot last marked; None: link up

    def due(self, now: float) -> list[Sample]:
        samples = [Sample(self.link, now, 0.0, Quality.GOOD)]
        slot = math.floor(now / BAD_REPEAT)
        if slot != self.slot:
            self.slot = slot
            samples[:0] = [Sample.bad(info.signal, now) for info in self.source.signals()]
        return samples


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
        # A link that connects and drops at once would log two lines per backoff step.
        self.lines = RateLimitedLog(log, name)

    def up(self, backoff: Backoff) -> None:
        self.stats.connected = True
        backoff.reset()
        if self.down_since is not None:
            self.lines.log(
                logging.WARNING,
                "%s: reconnected after %.0f s", self.name, time.monotonic() - self.down_since,
            )  # fmt: skip
        elif not self.ever_up:
            self.lines.log(logging.INFO, "%s: connected", self.name)
        self.down_since = None
        self.ever_up = True

    def lost(self, exc: BaseException) -> None:
        self.stats.last_error = str(exc) or type(exc).__name__
        self.stats.last_error_at = time.time()
        if self.down_since is None:
            self.stats.outages += 1
            self.lines.count("outages")
            self.lines.log(logging.WARNING, "%s: connection lost: %s", self.name, exc)
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
    link = link_signal(source.config.name)
    next_tick: float | None = None
    while True:
        started = loop.time()
        samples = await source.read()
        if cancel_was_swallowed():  # pymodbus waits for every reply with wait_for
            raise asyncio.CancelledError
        if not stats.connected:
            first_read()
        stats.reads += 1
        stats.samples += len(samples)
        stats.read_seconds = loop.time() - started
        stats.last_read_at = time.time()
        samples.append(Sample(link, time.time(), 1.0, Quality.GOOD))
        emit(samples)
        now = loop.time()
        if next_tick is None:
            next_tick = on_the_grid(interval, now, time.time())
        else:
            next_tick += interval
        if now > next_tick:
            missed = math.ceil((now - next_tick) / interval)
            stats.skipped_ticks += missed
            next_tick += missed * interval
            log.debug("%s: read overran, %d tick(s) skipped", source.config.name, missed)
        await asyncio.sleep(next_tick - now)


def on_the_grid(interval: float, now: float, wall: float) -> float:
    """The loop time of the next whole multiple of ``interval`` on the wall clock.

    ``now`` is the loop's time and ``wall`` the wall clock's at the same instant.

    The first read is made at once; later ticks fall on the clock's grid (a 1 s
    source on every whole second), so every source of the agent, and of other
    agents with a synchronised clock, samples at the same instants: values from
    different devices line up for the detector, and the loop wakes once per
    tick for all sources rather than once per source (50 devices at 1 s: about
    10 % less CPU, BENCHMARKS.md).
    """
    return now + interval - wall % interval


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
