"""The alert state machine: one open alert per (asset, cause), raised and cleared once.

Every detection step turns a score or a rule into a :class:`Level`:

- ``ABOVE``: the raise condition holds (score >= threshold, value over a limit);
- ``BELOW``: the clear condition holds (score under the hysteresis level);
- ``BAND``: between the two (hysteresis: neither raise nor clear);
- ``UNKNOWN``: no evidence this step (data missing or BAD): nothing is counted
  and every running streak restarts, so a gap never counts as "held for".

A :class:`Tracker` debounces levels with a :class:`Gate`: it raises when ``k`` of
the last ``n`` evaluations were ABOVE *and* ABOVE has held for ``hold`` seconds,
and clears the same way with BELOW. Noisy scores that cross the threshold now
and then therefore do not flap. The alert id comes from
:func:`edge_agent.types.alert_id` of the raise time, so the raise and the clear
of one episode share it, and a replay of the same samples gives the same ids.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from edge_agent.types import Alert, AlertKind, AlertState, Severity, alert_id


class Level(Enum):
    """Where one evaluation stands relative to the raise and clear conditions."""

    ABOVE = "above"
    BAND = "band"
    BELOW = "below"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Gate:
    """Debounce of one direction: ``k`` of the last ``n`` evaluations, held ``hold`` s."""

    k: int = 1
    n: int = 1
    hold: float = 0.0


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one evaluation saw, copied into the alert event it triggers."""

    score: float
    threshold: float
    signals: tuple[str, ...]
    reason: str
    window_start: float
    severity: Severity = Severity.WARNING
    extra: dict[str, Any] = field(default_factory=dict)


class _Counter:
    """k-of-n over recent evaluations, plus how long the current streak has lasted."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.recent: deque[bool] = deque(maxlen=gate.n)
        self.since: float | None = None

    def add(self, hit: bool, now: float) -> bool:
        """Record one evaluation; True when the gate is passed."""
        self.recent.append(hit)
        if not hit:
            self.since = None
            return False
        if self.since is None:
            self.since = now
        return sum(self.recent) >= self.gate.k and now - self.since >= self.gate.hold

    def reset(self) -> None:
        self.recent.clear()
        self.since = None


class Tracker:
    """Lifecycle of the alerts of one (asset, cause)."""

    def __init__(
        self, asset: str, cause: str, kind: AlertKind, raise_gate: Gate, clear_gate: Gate
    ) -> None:
        self.asset = asset
        self.cause = cause
        self.kind = kind
        self._raise = _Counter(raise_gate)
        self._clear = _Counter(clear_gate)
        self.open: Alert | None = None

    @property
    def is_open(self) -> bool:
        """True while an alert is raised and not yet cleared."""
        return self.open is not None

    def restore(self, alert: Alert) -> None:
        """Take back an alert left open by a previous run, so its clear keeps its id."""
        self.open = alert
        self._raise.reset()
        self._clear.reset()

    def update(self, now: float, level: Level, evidence: Evidence | None) -> Alert | None:
        """Feed one evaluation at time ``now``; returns a raise or clear event, if any."""
        if level is Level.UNKNOWN or evidence is None:
            # A gap breaks streaks, but the k-of-n history survives it.
            self._raise.since = None
            self._clear.since = None
            return None
        if self.open is None:
            if self._raise.add(level is Level.ABOVE, now):
                return self._raise_alert(now, evidence)
            return None
        if self._clear.add(level is Level.BELOW, now):
            return self._clear_alert(now, evidence)
        return None

    def _raise_alert(self, now: float, evidence: Evidence) -> Alert:
        self._raise.reset()
        self._clear.reset()
        self.open = self._event(
            alert_id(self.asset, self.cause, now),
            AlertState.RAISED,
            now,
            evidence,
            evidence.severity,
        )
        return self.open

    def _clear_alert(self, now: float, evidence: Evidence) -> Alert:
        assert self.open is not None
        raised = self.open
        self.open = None
        self._raise.reset()
        self._clear.reset()
        # The clear keeps the severity of its raise: upstream pairs them by id.
        return self._event(raised.id, AlertState.CLEARED, now, evidence, raised.severity)

    def _event(
        self, event_id: str, state: AlertState, now: float, evidence: Evidence, severity: Severity
    ) -> Alert:
        return Alert(
            id=event_id,
            asset=self.asset,
            kind=self.kind,
            cause=self.cause,
            severity=severity,
            state=state,
            signals=evidence.signals,
            score=evidence.score,
            threshold=evidence.threshold,
            window_start=evidence.window_start,
            window_end=now,
            reason=evidence.reason,
            extra=evidence.extra,
        )
