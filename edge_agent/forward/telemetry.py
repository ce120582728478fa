"""Telemetry upstream: periodic per-signal summaries from the twin, with backfill.

For each sink with ``telemetry: on``, every ``telemetry_interval`` (windows aligned
to the interval on the wall clock) each signal's raw samples in the window are
summarised (count, bad, min, max, mean, last) and queued in the outbox. The end of
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
from collections.abc import Sequence
from typing import Protocol

from edge_agent.forward.config import SinkSettings
from edge_agent.forward.delivery import Run
from edge_agent.forward.encode import TelemetrySummary
from edge_agent.forward.outbox import Outbox
from edge_agent.types import Quality, Sample, SignalInfo

log = logging.getLogger(__name__)


class SignalHistory(Protocol):
    """What telemetry reads from the twin (the twin's ``SignalStore`` is one)."""

    def signals(self) -> list[SignalInfo]:
        """The catalogue of signals."""
        ...

    def history(self, signal: str, since: float, until: float | None = None) -> list[Sample]:
        """Raw samples of one signal in ``[since, until]``, oldest first."""
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
        summaries = [
            summary
            for info in store.signals()
            if (summary := summarize(info, store.history(info.signal, start, end), start, end))
        ]
        outbox.put_telemetry(summaries, gateway, [sink], until=end)
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
