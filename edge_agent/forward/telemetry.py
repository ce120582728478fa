"""Telemetry upstream: periodic per-signal summaries from the twin, with backfill.

For each sink with ``telemetry: on``, every ``telemetry_interval`` (windows aligned
to the interval on the wall clock) each signal's window is summarised (count,
bad, min, max, mean, last) and queued in the outbox. A window of whole minutes is
summarised from the twin's minute rollups, which already hold those figures for
every signal (one row id range read per minute); re-reading the raw samples
instead cost 3.3 s of DB-thread CPU per minute at 2,000 tags @ 100 ms (BENCHMARKS.md).
Shorter or unaligned windows are summarised from the raw samples. The end of
the last summarised window is stored with the rows in the same transaction, so
after a restart the missing windows are summarised from the twin's history, in
order, oldest first (up to :data:`BACKFILL_MAX` back). Summaries that reach the
sink late (an outage, a backfill) are marked ``historical`` by the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from edge_agent.forward.config import SinkSettings
from edge_agent.forward.delivery import Run
from edge_agent.forward.encode import TelemetrySummary
from edge_agent.forward.outbox import Outbox
from edge_agent.types import Quality, Sample, SignalInfo

log = logging.getLogger(__name__)


MINUTE = 60.0


class Rollup(Protocol):
    """A signal's minute rollups combined over a window (the twin's ``Rollup`` is one)."""

    @property
    def ts(self) -> float:
        """Start of the window."""
        ...

    @property
    def min(self) -> float | None:
        """Smallest value."""
        ...

    @property
    def max(self) -> float | None:
        """Largest value."""
        ...

    @property
    def mean(self) -> float | None:
        """Mean of the values."""
        ...

    @property
    def last(self) -> float | None:
        """Newest value."""
        ...

    @property
    def count(self) -> int:
        """Samples with a value."""
        ...

    @property
    def bad(self) -> int:
        """BAD samples."""
        ...


class SignalHistory(Protocol):
    """What telemetry reads from the twin (the twin's ``SignalStore`` is one)."""

    def signals(self) -> list[SignalInfo]:
        """The catalogue of signals."""
        ...

    def history(self, signal: str, since: float, until: float | None = None) -> list[Sample]:
        """Raw samples of one signal in ``[since, until]``, oldest first."""
        ...

    def window_rollups(self, start: float, end: float) -> Mapping[str, Rollup]:
        """Every signal's minute rollups over ``[start, end)`` (whole minutes) combined."""
        ...


BACKFILL_MAX = 86_400.0
"""Oldest window summarised after a restart (seconds back); the twin may keep less."""
SETTLE = 2.0
"""Seconds past a window's end before it is summarised: the recorder flushes first."""
MAX_WINDOWS_PER_STEP = 60
"""Windows summarised per worker call, so a long backfill does not hog the DB thread."""


def summarize(
    info: SignalInfo, samples: Sequence[Sample], start: float, end: float
) -> TelemetrySummary | None:
    """The summary of ``samples`` in ``[start, end)``; None when there were none."""
    inside = [s for s in samples if start <= s.ts < end]
    values = [s.value for s in inside if s.quality != Quality.BAD and s.value is not None]
    bad = sum(1 for s in inside if s.quality == Quality.BAD)
    if not values and not bad:
        return None
    finite = [v for v in values if math.isfinite(v)]
    return TelemetrySummary(
        signal=info.signal,
        asset=info.asset,
        start=start,
        end=end,
        count=len(values),
        bad=bad,
        min=min(finite) if finite else None,
        max=max(finite) if finite else None,
        mean=sum(finite) / len(finite) if finite else None,
        last=values[-1] if values else None,
        unit=info.unit,
    )


def from_rollup(info: SignalInfo, rollup: Rollup, end: float) -> TelemetrySummary | None:
    """The summary of one signal's combined minute rollups; None when they hold no sample."""
    if not rollup.count and not rollup.bad:
        return None
    return TelemetrySummary(
        signal=info.signal,
        asset=info.asset,
        start=rollup.ts,
        end=end,
        count=rollup.count,
        bad=rollup.bad,
        min=_finite(rollup.min),
        max=_finite(rollup.max),
        mean=_finite(rollup.mean),
        last=rollup.last,
        unit=info.unit,
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def window_summaries(store: SignalHistory, start: float, end: float) -> list[TelemetrySummary]:
    """Every signal's summary of ``[start, end)``: from the rollups for whole minutes."""
    infos = store.signals()
    if start % MINUTE == 0 and end % MINUTE == 0:
        rollups = store.window_rollups(start, end)
        pairs = ((info, rollups.get(info.signal)) for info in infos)
        return [s for info, r in pairs if r and (s := from_rollup(info, r, end))]
    return [
        summary
        for info in infos
        if (summary := summarize(info, store.history(info.signal, start, end), start, end))
    ]


def telemetry_step(
    store: SignalHistory, outbox: Outbox, sink: str, gateway: str, interval: float, now: float
) -> int:
    """Summarise the due windows for ``sink`` (blocking; run it on the DB thread).

    Returns:
        The number of windows summarised.
    """
    last_due = math.floor((now - SETTLE) / interval) * interval
    until = outbox.telemetry_until(sink)
    start = last_due - interval if until is None else max(until, now - BACKFILL_MAX)
    start = math.floor(start / interval) * interval
    done = 0
    while start + interval <= last_due and done < MAX_WINDOWS_PER_STEP:
        end = start + interval
        outbox.put_telemetry(window_summaries(store, start, end), gateway, [sink], until=end)
        start, done = end, done + 1
    return done


async def telemetry_forever(
    store: SignalHistory, outbox: Outbox, sink: SinkSettings, gateway: str, run: Run,
    wake: asyncio.Event,
) -> None:  # fmt: skip
    """Queue summaries for ``sink`` every ``telemetry_interval`` until cancelled.

    Args:
        store: the twin (read on the DB thread through ``run``).
        outbox: the outbox.
        sink: the sink's config (``name``, ``telemetry_interval``).
        gateway: this gateway's id.
        run: ``await run(fn, *args)`` runs a blocking call on the DB thread.
        wake: the sink's delivery wake-up event.
    """
    interval = sink.telemetry_interval
    failing = False
    while True:
        try:
            await _catch_up(store, outbox, sink, gateway, run, wake)
        except Exception as exc:  # top of a *_forever loop: a full disk must not stop the agent
            if not failing:
                log.error("%s: telemetry not queued, retrying next window: %s", sink.name, exc)
            failing = True
        else:
            if failing:
                log.warning("%s: telemetry queued again", sink.name)
            failing = False
        now = time.time()
        await asyncio.sleep((math.floor(now / interval) + 1) * interval + SETTLE - now)


async def _catch_up(
    store: SignalHistory, outbox: Outbox, sink: SinkSettings, gateway: str, run: Run,
    wake: asyncio.Event,
) -> None:  # fmt: skip
    done = MAX_WINDOWS_PER_STEP
    while done == MAX_WINDOWS_PER_STEP:  # a backfill goes on without waiting
        done = await run(
            telemetry_step, store, outbox, sink.name, gateway, sink.telemetry_interval, time.time()
        )
        if done:
            wake.set()
