"""Per-unit backoff on a shared bus: a silent unit must not stall the others.

Each Modbus unit (slave id) behind one connection has its own state. When a
unit stops answering, its requests are skipped (its signals read BAD) for a
backoff that doubles at each failed attempt, with jitter so a line of units
that died together does not retry in lockstep (:class:`Backoff`). The backoff
runs from the *end* of the failed try: counted from the tick's start, a try
that took ``timeout x (retries + 1)`` would eat the first steps of it, and a
dead unit would cost the line a timeout at every tick. The first answer ends
the outage. Transitions are logged once each way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from edge_agent.backoff import Backoff

log = logging.getLogger(__name__)


@dataclass(slots=True)
class UnitCounts:
    """What one unit did since its source was built (kept across connections and outages).

    Attributes:
        requests: requests sent to it (each retry is one).
        answers: replies with data.
        timeouts: requests it did not answer in time.
        exceptions: Modbus exception code -> replies with that code (a gateway's
            "target failed to respond", 10 and 11, included).
        malformed: replies that do not fit the request.
        lost: requests cut short by a lost connection.
        outages: times it stopped answering and was backed off.
        last_response: seconds the last reply took (data or exception).
        response_sum: seconds all replies took (with ``replies``: a mean).
    """

    requests: int = 0
    answers: int = 0
    timeouts: int = 0
    exceptions: dict[int, int] = field(default_factory=dict)
    malformed: int = 0
    lost: int = 0
    outages: int = 0
    last_response: float = 0.0
    response_sum: float = 0.0

    @property
    def replies(self) -> int:
        """Replies of any kind (data, exception, malformed): the responses timed."""
        return self.answers + sum(self.exceptions.values()) + self.malformed

    def refused(self, code: int) -> None:
        """Count one reply with Modbus exception ``code`` (cold path)."""
        self.exceptions[code] = self.exceptions.get(code, 0) + 1


@dataclass
class _Unit:
    backoff: Backoff
    retry_at: float = 0.0
    down_since: float | None = None
    heard: bool = False  # answered since the connection opened


@dataclass
class UnitHealth:
    """Which units may be asked now, and for how long the others rest.

    Attributes:
        source: the source's name, for log lines.
        units: the unit ids behind the connection.
        first: first backoff (seconds); doubles per failed attempt.
        most: longest backoff (seconds).
    """

    source: str
    units: Iterable[int]
    first: float
    most: float
    counts: dict[int, UnitCounts] = field(init=False)
    _state: dict[int, _Unit] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.units = tuple(self.units)
        self.counts = {unit: UnitCounts() for unit in self.units}

    def reset(self) -> None:
        """Forget every outage (a new connection gives every unit a new chance)."""
        self._state = {unit: _Unit(Backoff(self.first, self.most)) for unit in self.units}

    def available(self, unit: int, now: float) -> bool:
        """Whether ``unit`` may be asked at ``now`` (monotonic seconds)."""
        return now >= self._state[unit].retry_at

    def trusted(self, unit: int) -> bool:
        """Whether ``unit`` answered its last try (its next one will likely be quick)."""
        state = self._state[unit]
        return state.heard and state.down_since is None

    def down(self, unit: int) -> bool:
        """Whether ``unit`` is in an outage (its next try will likely cost a full timeout)."""
        return self._state[unit].down_since is not None

    def failed(self, unit: int, now: float, reason: str) -> float:
        """Record a silent attempt that ended at ``now``; return the backoff chosen (seconds)."""
        state = self._state[unit]
        if state.down_since is None:
            state.down_since = now
            self.counts[unit].outages += 1
            log.warning("%s: unit %d not answering (%s); backing off", self.source, unit, reason)
        delay = state.backoff.next_delay()
        state.retry_at = now + delay
        return delay

    def answered(self, unit: int, now: float) -> None:
        """Record an answer (data or a Modbus exception: the unit is alive)."""
        state = self._state[unit]
        state.heard = True
        if state.down_since is not None:
            log.info(
                "%s: unit %d answering again after %.0f s",
                self.source,
                unit,
                now - state.down_since,
            )
            self._state[unit] = _Unit(Backoff(self.first, self.most), heard=True)

    def down_since(self, unit: int) -> float | None:
        """When ``unit``'s outage began (loop seconds), None when it answers."""
        return self._state[unit].down_since if self._state else None

    def all_down(self) -> bool:
        """Whether every unit is in an outage (then the link itself is suspect)."""
        return all(state.down_since is not None for state in self._state.values())
