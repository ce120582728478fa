"""Live samples for sinks that publish values as they change (the ``sparkplug`` sink).

Why the observer hook: the recorder already calls its observer, on the event loop, for
every batch it accepts, polled or derived by the detector, so a live sink sees exactly
what the twin records, with no second queue, no extra task and no change to the poll
loops. The sink only looks at the batch and buffers what changed; it never blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from edge_agent.types import Alert, Sample, SignalInfo


@runtime_checkable
class LiveSink(Protocol):
    """A sink that wants the signal catalogue and every sample."""

    def describe(self, infos: Sequence[SignalInfo]) -> None:
        """Every signal the agent produces (before the sink connects)."""

    async def recatalogue(self, infos: Sequence[SignalInfo]) -> None:
        """Every signal the agent produces after a reload changed them (while running)."""

    def on_samples(self, batch: Sequence[Sample]) -> None:
        """A batch of samples, on the event loop; must not block."""

    def on_alerts(self, alerts: Sequence[Alert]) -> None:
        """Alerts, on the event loop."""


def live_sinks(sinks: Sequence[Any]) -> list[LiveSink]:
    """The sinks that keep the signal catalogue and watch every sample."""
    return [sink for sink in sinks if isinstance(sink, LiveSink)]


def attach_live(sinks: Sequence[Any], infos: Sequence[SignalInfo], observer: Any) -> Any:
    """Tell live sinks the catalogue; return the observer for the recorder.

    Returns ``observer`` itself when no sink is live, else one that calls ``observer``
    (when given) and each live sink.
    """
    live = live_sinks(sinks)
    if not live:
        return observer
    for sink in live:
        sink.describe(infos)
    return _fanout(observer, live)


def with_live(observer: Any, sink: LiveSink) -> Any:
    """``observer`` that tells ``sink`` too (a live sink started by a reload)."""
    if isinstance(observer, Fanout):
        observer.targets.append(sink)
        return observer
    return _fanout(observer, [sink])


def _fanout(observer: Any, sinks: Sequence[LiveSink]) -> Fanout:
    """``observer`` (when given), then each of ``sinks``."""
    return Fanout([*([observer] if observer is not None else []), *sinks])


def without_live(observer: Any, sink: LiveSink) -> Any:
    """``observer`` that no longer tells ``sink`` (a live sink a reload stopped)."""
    if isinstance(observer, Fanout):
        observer.targets[:] = [target for target in observer.targets if target is not sink]
    return observer


class Fanout:
    """An observer that calls several (the demo's screen and the live sinks)."""

    def __init__(self, targets: list[Any]) -> None:
        self.targets = targets

    def on_samples(self, batch: Sequence[Sample]) -> None:
        """Hand the batch to each target."""
        for target in self.targets:
            target.on_samples(batch)

    def on_alerts(self, alerts: Sequence[Alert]) -> None:
        """Hand the alerts to each target."""
        for target in self.targets:
            target.on_alerts(alerts)
