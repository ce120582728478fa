"""What a start (:mod:`edge_agent.agent`) and a SIGHUP (:mod:`edge_agent.reload`) both build.

The signal catalogue, a detector's windows warmed from the twin, and the open
alerts handed to a new detector (with those the detector loop holds in memory while
the outbox refuses, at a reload). One place, so a reloaded detector is set up
exactly as one at start. The functions that touch the twin or the outbox are
synchronous: call them on the worker thread that owns those files.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.detect.detector import Detector
from edge_agent.forward.alert_state import replay
from edge_agent.forward.outbox import Outbox
from edge_agent.sources.poll import Source, link_info
from edge_agent.twin.store import SignalStore
from edge_agent.twin.windows import Windows
from edge_agent.types import Alert, SignalInfo


def catalogue(sources: Sequence[Source], detector: Detector) -> list[SignalInfo]:
    """Every signal the agent records: the sources', the detector's, each source's link."""
    infos = [info for source in sources for info in source.signals()] + detector.signal_infos()
    return infos + [link_info(source) for source in sources]


def window_capacity(window_s: float, infos: Sequence[SignalInfo], needed: set[str]) -> int:
    """Samples per signal the windows keep: the detectors' span at the fastest interval.

    Four times over, because a streaming serial sensor may send faster than the
    source's interval; a window short of history would not be scored.
    """
    intervals = [i.interval for i in infos if i.signal in needed and i.interval > 0]
    fastest = min(intervals, default=1.0)
    return max(256, int(4 * window_s / fastest))


def warm_windows(
    store: SignalStore, detector: Detector, infos: Sequence[SignalInfo], now: float
) -> Windows:
    """The windows ``detector`` reads, filled with the twin's last window of history.

    Args:
        store: the twin (worker thread).
        detector: the detector the windows are for.
        infos: the catalogue entries that give each signal's interval.
        now: the end of the history to load (Unix seconds).
    """
    window_s = detector.window_seconds()
    needed = detector.signals()
    windows = Windows(window_capacity(window_s, infos, needed), signals=needed)
    windows.warm(store, needed, now - window_s)
    return windows


def hand_over(
    detector: Detector, outbox: Outbox, held: Sequence[Alert], now: float
) -> tuple[list[Alert], list[Alert]]:
    """Hand the alerts open now to ``detector`` (worker thread).

    Open now: those open in the outbox, with ``held`` applied on top (events the
    outbox refused so far, held in memory by the detector loop, in order).

    Returns:
        The alerts open, and the clears of those whose rule or asset is gone (to be
        stored after ``held``).
    """
    alerts = replay(outbox.open_alerts(), held)
    return alerts, detector.restore(alerts, now)


def restore_open_alerts(
    detector: Detector, outbox: Outbox, gateway: str, now: float
) -> tuple[list[Alert], list[Alert]]:
    """Hand the alerts open in the outbox to ``detector`` (worker thread), at a start.

    Those whose rule or asset is gone are cleared at once: their clear events go
    into the outbox.

    Returns:
        The alerts that were open, and those of them cleared as orphans.
    """
    alerts, orphans = hand_over(detector, outbox, (), now)
    if orphans:
        outbox.put_alerts(orphans, gateway)
    return alerts, orphans
