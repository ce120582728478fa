"""Which Sparkplug devices are reachable, and which the host holds as born.

A device is an asset (see :mod:`edge_agent.forward.sparkplug_namespace`); the sources
that **feed** it are those whose signals, or whose link signal ``link.<source>``, are
born on it. Each poll loop records its link as a signal (1.0 up, 0.0 down; see
``edge_agent.sources.poll``), so this module reads the link state from the same batches
the sink already gets, with no second hook into the sources.

- A device is **dead** when every source that feeds it is down. The edge node then
  publishes a DDEATH for it (tck-id-operational-behavior-device-ddeath: "If a Sparkplug
  Edge Node loses connection with an attached Sparkplug Device, it MUST publish a DDEATH
  message on behalf of the device") and sends no DDATA for it until a new DBIRTH.
- A device fed by several sources stays born while one of them is up: it still provides
  real-time values; the down source's metrics go to Quality 0 (BAD) as the poll loop
  marks them.
- A source never heard from counts as up (a birth names the device; a down source
  says so within one interval), and so does a device with no source (detector-only).

A reload that changes the catalogue (:meth:`Devices.with_feeds`) **retires** each born
device whose metric set changed, or that is no longer in the catalogue: a DDEATH, then a
DBIRTH with the new metric set while it is reachable and still there. That is how the
specification's editors answer "how to add or delete metrics of a device" (eclipse-sparkplug
issue 540: a DDEATH, then a DBIRTH with the device's current metrics); a new device just
gets its DBIRTH (issue 492), as a device that comes back does.

A dead device's messages are published on the node instead (:meth:`Devices.to_node`):
only metrics the NBIRTH also carries survive (``Alert/*``, ``Command/*``), so an alert
event, durable in the outbox, is published at once as NDATA and acknowledged, never held
until the device returns, and never sent as DDATA after its DDEATH.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from edge_agent.forward.sparkplug_namespace import NODE, Namespace
from edge_agent.forward.sparkplug_payload import MetricValue
from edge_agent.types import Sample, SignalInfo

LINK = "link"
"""Source name of the link signals (``edge_agent.sources.poll.LINK``; forward/ does not
import sources/)."""
DETECT = "detect"
"""Source name of the detector's outputs: they say nothing about a device's link."""
NODE_FOLDERS = ("Alert/", "Command/")
"""Device metrics the node also carries (born in NBIRTH), so they can move to NDATA."""


def feeders(namespace: Namespace, infos: Iterable[SignalInfo]) -> dict[str, set[str]]:
    """The sources that feed each device, from the signal catalogue."""
    feeds: dict[str, set[str]] = {}
    for info in infos:
        device = namespace.device_of.get(info.signal)
        if device is None or info.source == DETECT:
            continue
        source = info.signal[len(LINK) + 1 :] if info.source == LINK else info.source
        feeds.setdefault(device, set()).add(source)
    return feeds


@dataclass
class Devices:
    """Reachability of each device, and the set the host holds as born.

    Args:
        feeds: the sources feeding each device (:func:`feeders`).
    """

    feeds: dict[str, set[str]] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    """Sources whose last link sample said down."""
    born: set[str] = field(default_factory=set)
    """Devices with a DBIRTH and no DDEATH since, in this session."""
    withheld: dict[str, int] = field(default_factory=dict)
    """Stored values of a dead device not sent (no DDATA after a DDEATH), per device."""
    retire: set[str] = field(default_factory=set)
    """Born devices whose metric set a reload changed, or that it removed: each owes a
    DDEATH, then (still in the catalogue and reachable) a DBIRTH with its new metrics."""

    def __post_init__(self) -> None:
        sources = {s for fed in self.feeds.values() for s in fed}
        self._links = {f"{LINK}.{s}": s for s in sources}

    def with_feeds(self, feeds: dict[str, set[str]], reshaped: set[str]) -> Devices:
        """The devices of a new catalogue (a reload): who is born, down or withheld carries
        over; born devices in ``reshaped`` are retired."""
        sources = {s for fed in feeds.values() for s in fed}
        new = Devices(feeds, self.down & sources, set(self.born), dict(self.withheld))
        new.retire = (self.retire | reshaped) & self.born
        return new

    def observe(self, batch: Sequence[Sample]) -> bool:
        """Take the link samples of ``batch``; True when a source went up or down."""
        links, moved = self._links, False
        for sample in batch:
            source = links.get(sample.signal)
            if source is None:
                continue
            is_down = sample.value is not None and sample.value < 0.5
            if is_down != (source in self.down):
                moved = True
                if is_down:
                    self.down.add(source)
                else:
                    self.down.discard(source)
        return moved

    def alive(self, device: str) -> bool:
        """False when every source feeding ``device`` is down."""
        fed = self.feeds.get(device)
        return not fed or not fed <= self.down

    def reachable(self, devices: Iterable[str]) -> list[str]:
        """The devices of ``devices`` that are alive, in order."""
        return [device for device in devices if self.alive(device)]

    def dying(self) -> list[str]:
        """Born devices that are no longer reachable, or retired: each needs a DDEATH."""
        return sorted(d for d in self.born if d in self.retire or not self.alive(d))

    def reviving(self, devices: Iterable[str]) -> list[str]:
        """Reachable devices the host does not hold as born: each needs a DBIRTH."""
        return [d for d in devices if d not in self.born and self.alive(d)]

    def down_sources(self, device: str) -> list[str]:
        """The sources feeding ``device`` that are down (for the log line)."""
        return sorted(self.feeds.get(device, set()) & self.down)

    def to_node(
        self, namespace: Namespace, device: str, metrics: list[MetricValue]
    ) -> list[MetricValue]:
        """A dead device's metrics as NDATA: those the node also carries; the rest withheld.

        The node's ``Alert/*`` take the event, so a later NBIRTH agrees with what the
        host last saw on the node.
        """
        kept = [m for m in metrics if m.name.startswith(NODE_FOLDERS)]
        if len(kept) < len(metrics):
            self.withheld[device] = self.withheld.get(device, 0) + len(metrics) - len(kept)
        alerts = {m.name: m for m in kept if m.name.startswith("Alert/")}
        if alerts:
            namespace.alerts.setdefault(NODE, {}).update(alerts)
        return kept
