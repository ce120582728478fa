"""OPC UA DataValues -> Samples: status severity, timestamps, numbers, duplicates.

No asyncua import here: a DataValue is read by attribute name only, so this
module stays cheap and testable alone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from edge_agent.types import Quality, Sample

log = logging.getLogger(__name__)

TimestampChoice = Literal["source", "server", "gateway"]

_SEVERITY_MASK = 0xC000_0000
_UNCERTAIN = 0x4000_0000
# Timestamps before 1971 are the "no time" encodings (DateTime 0 decodes to 1601).
_MIN_EPOCH = 365 * 86400.0


def quality_of(status: int) -> Quality:
    """The Quality of an OPC UA StatusCode value, from its two severity bits."""
    severity = status & _SEVERITY_MASK
    if severity == 0:
        return Quality.GOOD
    if severity == _UNCERTAIN:
        return Quality.UNCERTAIN
    return Quality.BAD  # 10 and the reserved 11 are both Bad (Part 4, 7.39)


def _epoch(stamp: datetime | None) -> float | None:
    if stamp is None:
        return None
    ts = stamp.timestamp()
    return ts if ts > _MIN_EPOCH else None


def timestamp_of(data: Any, choice: TimestampChoice, now: float) -> float:
    """Sample time of a DataValue: the chosen timestamp, falling back towards ``now``.

    ``source`` falls back to the server timestamp, then to the gateway clock;
    ``server`` falls back to the gateway clock.
    """
    if choice == "gateway":
        return now
    ts = _epoch(data.SourceTimestamp) if choice == "source" else None
    if ts is None:
        ts = _epoch(data.ServerTimestamp)
    return now if ts is None else ts


def number_of(value: Any) -> float | None:
    """``value`` as a float, or None when it is not a finite scalar number."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


class SampleMaker:
    """Turns DataValues into Samples and drops exact repeats.

    A repeat is a sample whose timestamp is not newer than the last one kept for
    its signal. Repeats come from re-created subscriptions (initial values after
    a reconnect) and from polling a value that has not changed at the source;
    the twin must see each (signal, time) once.
    """

    def __init__(self, timestamps: TimestampChoice) -> None:
        self.timestamps = timestamps
        self.last_ts: dict[str, float] = {}
        self.refused: set[str] = set()
        self.repeats = 0  # values dropped as repeats since start (for accounting)

    def make(self, signal: str, data: Any, now: float) -> Sample | None:
        """The Sample for one DataValue, or None when it repeats an earlier one."""
        ts = timestamp_of(data, self.timestamps, now)
        if ts <= self.last_ts.get(signal, -math.inf):
            self.repeats += 1
            return None
        self.last_ts[signal] = ts
        status = data.StatusCode.value if data.StatusCode is not None else 0
        quality = quality_of(status)
        if quality is Quality.BAD:
            return Sample.bad(signal, ts)
        variant = data.Value
        number = number_of(variant.Value if variant is not None else None)
        if number is None:
            self._refuse(signal, variant)
            return Sample.bad(signal, ts)
        self.refused.discard(signal)
        return Sample(signal, ts, number, quality)

    def make_all(self, items: Iterable[tuple[str, Any]], now: float) -> list[Sample]:
        """Samples for ``(signal, DataValue)`` pairs, repeats dropped."""
        made = (self.make(signal, data, now) for signal, data in items)
        return [sample for sample in made if sample is not None]

    def _refuse(self, signal: str, variant: Any) -> None:
        # Logged once per signal until it turns numeric again: transitions, not repetitions.
        if signal not in self.refused:
            self.refused.add(signal)
            shown = type(variant.Value).__name__ if variant is not None else "nothing"
            log.warning("%s: value is not a number (%s); recorded as BAD", signal, shown)
