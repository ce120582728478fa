"""Per-unit backoff on a shared bus: a silent unit must not stall the others.

Each Modbus unit (slave id) behind one connection has its own state. When a
unit stops answering, its requests are skipped (its signals read BAD) for a
backoff that doubles at each failed attempt, with jitter so a line of units
that died together does not retry in lockstep. The first answer ends the
outage. Transitions are logged once each way.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class _Unit:
    failures: int = 0
    retry_at: float = 0.0
    down_since: float = 0.0


class UnitHealth:
    """Which units may be asked now, and for how long the others rest."""

    def __init__(
        self,
        source: str,
        units: Iterable[int],
        first: float,
        most: float,
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self.first = first
        self.most = most
        self.rng = rng or random.Random()
        self._units = {unit: _Unit() for unit in units}

    def reset(self) -> None:
        """Forget every outage (a new connection gives every unit a new chance)."""
        for unit in self._units:
            self._units[unit] = _Unit()

    def available(self, unit: int, now: float) -> bool:
        """Whether ``unit`` may be asked at ``now`` (monotonic seconds)."""
        return now >= self._units[unit].retry_at

    def failed(self, unit: int, now: float, reason: str) -> float:
        """Record a silent attempt; return the backoff chosen (seconds)."""
        state = self._units[unit]
        if state.failures == 0:
            state.down_since = now
            log.warning("%s: unit %d not answering (%s); backing off", self.source, unit, reason)
        state.failures += 1
        delay = min(self.most, self.first * 2.0 ** (state.failures - 1))
        delay *= self.rng.uniform(0.5, 1.0)
        state.retry_at = now + delay
        return delay

    def answered(self, unit: int, now: float) -> None:
        """Record an answer (data or a Modbus exception: the unit is alive)."""
        state = self._units[unit]
        if state.failures:
            log.info(
                "%s: unit %d answering again after %.0f s",
                self.source,
                unit,
                now - state.down_since,
            )
            self._units[unit] = _Unit()

    def down(self, unit: int) -> bool:
        """Whether ``unit`` is in an outage."""
        return self._units[unit].failures > 0

    def all_down(self) -> bool:
        """Whether every unit is in an outage (then the link itself is suspect)."""
        return all(state.failures for state in self._units.values())
