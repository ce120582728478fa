"""The latest-value view with staleness, and the health of the store's writes."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass

from edge_agent.types import BAD_REPEAT, Quality, Sample, SignalInfo

log = logging.getLogger("edge_agent.twin.store")


@dataclass(frozen=True, slots=True)
class SignalStatus:
    """One line of the latest-value view.

    Attributes:
        info: the catalogue entry.
        sample: the latest sample, or None if none is held.
        age: seconds since that sample's timestamp, or None.
        stale: no sample within ``stale_factor`` times the signal's interval
            (a signal with interval 0, unknown, is never stale once it has a sample).
            A BAD latest sample may be ``stale_factor`` times ``BAD_REPEAT`` old (a
            down source marks its signals BAD at that pace, see ``sources.poll``).
    """

    info: SignalInfo
    sample: Sample | None
    age: float | None
    stale: bool


def signal_status(
    infos: Iterable[SignalInfo], latest: dict[str, Sample], now: float, stale_factor: float
) -> list[SignalStatus]:
    """Every signal of ``infos``, sorted by name, with its latest sample, age and staleness."""
    result = []
    for info in sorted(infos, key=lambda i: i.signal):
        sample = latest.get(info.signal)
        age = None if sample is None else now - sample.ts
        stale = age is None or (info.interval > 0 and age > stale_factor * _every(info, sample))
        result.append(SignalStatus(info, sample, age, stale))
    return result


def _every(info: SignalInfo, sample: Sample | None) -> float:
    """How often a sample of ``info`` is due: a BAD one is repeated only every BAD_REPEAT."""
    if sample is not None and sample.quality == Quality.BAD:
        return max(info.interval, BAD_REPEAT)
    return info.interval


class WriteHealth:
    """Disk-full state and counters of a store; logs each transition once.

    Attributes:
        full: the last write was refused for lack of space.
        dropped: samples not stored because the disk was full.
        rejected: samples dropped for an invalid timestamp.
    """

    def __init__(self) -> None:
        self.full = False
        self.dropped = 0
        self.rejected = 0
        self._full_since = 0.0

    def failed(self, exc: sqlite3.Error, lost: int) -> None:
        """A write was refused for lack of space; ``lost`` samples were not stored."""
        self.dropped += lost
        if not self.full:
            self.full = True
            self._full_since = time.monotonic()
            log.error(
                "twin: database full (%s); samples are not stored until space "
                "returns, latest values are kept in memory",
                exc,
            )

    def succeeded(self) -> None:
        """A write went through."""
        if self.full:
            self.full = False
            log.warning(
                "twin: writes resumed after %.0f s; %d samples were not stored",
                time.monotonic() - self._full_since,
                self.dropped,
            )

    def reject(self, bad: list[Sample]) -> None:
        """Samples without a finite timestamp were dropped."""
        if not self.rejected:
            log.warning("twin: dropping samples without a valid timestamp (first: %s)", bad[0])
        self.rejected += len(bad)
