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

While an alert is open it may be updated, each update an event under the same
id (``extra["update"]`` numbers them): its severity escalates when the evidence
of a higher severity passes the raise gate (and never goes down within an
episode: ISA-18.2 sets priority by the consequence of the condition, and a
priority that drops while the condition persists invites the operator to ignore
it; an escalation also undoes an acknowledgement, since the operator has not
seen the worse state); an operator acknowledges or shelves it.

Alarm management (ISA-18.2):

- *Chattering*: an alert raised more than ``Chatter.count`` times within
  ``Chatter.within`` is flagged (``extra["chattering"]``, on the raise that
  crosses the count) and held: it clears only once the clear condition has
  held for ``Chatter.hold`` seconds without a break.
- *Shelving* applies to the cause, not just the open episode: until it ends
  (time limit, or unshelve) no new episode is raised; an episode open when it
  was shelved still clears as usual. Its end is an ``unshelved`` event when an
  alert is open, else silent.
- *Run-state*: while the machine is stopped (:meth:`Tracker.stop`) nothing is
  evaluated and an open alert is cleared, reason "machine stopped" (a standing
  alarm on a stopped machine only teaches operators to ignore alarms).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
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
    values: Callable[[], dict[str, Any]] | None = None
    """The window's values of the top signals, built only when an event needs them."""
    detail: Callable[[], Evidence] | None = None
    """The full evidence (signals, reason, extra), built only when an event needs it."""

    def full(self) -> Evidence:
        """This evidence with its signals, reason and extra filled in."""
        return self.detail() if self.detail is not None else self


@dataclass(frozen=True, slots=True)
class Chatter:
    """Chattering: more than ``count`` raises within ``within`` s; then clear after ``hold`` s."""

    count: int = 3
    within: float = 600.0
    hold: float = 600.0


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


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
        self.chatter = Chatter()
        self.shelved_until = 0.0
        self._raise = _Counter(raise_gate)
        self._clear = _Counter(clear_gate)
        self._escalate = _Counter(raise_gate)
        self._raises: deque[float] = deque()
        self.open: Alert | None = None

    @property
    def is_open(self) -> bool:
        """True while an alert is raised and not yet cleared."""
        return self.open is not None

    def settled(self) -> bool:
        """True when an update with any level but ABOVE would change nothing and return None.

        No alert is open, the cause is not shelved, no streak is running and none of
        the recent evaluations was ABOVE. (Such an update would only add a non-ABOVE
        entry to the k-of-n history, which holds none to count.) A caller that knows
        the level may then skip the update, and the building of its evidence.
        """
        raised = self._raise
        return (
            self.open is None
            and not self.shelved_until
            and raised.since is None
            and self._clear.since is None
            and self._escalate.since is None
            and True not in raised.recent
        )

    def restore(self, alert: Alert) -> None:
        """Take back an alert left open by a previous run, so its clear keeps its id."""
        self.open = alert
        self.shelved_until = float(alert.extra.get("shelved_until", 0.0))
        self._reset()

    def update(
        self, now: float, level: Level, evidence: Evidence | Callable[[], Evidence] | None
    ) -> Alert | None:
        """Feed one evaluation at time ``now``; returns the event it causes, if any.

        ``evidence`` may be a function that builds it: it is called only when an
        event (or a possible escalation) needs it, which most evaluations do not.
        """
        if self.shelved_until and now >= self.shelved_until:
            expired = self.unshelve(now, "shelve expired")
            if expired is not None:
                return expired
        if level is Level.UNKNOWN or evidence is None:
            # A gap breaks streaks, but the k-of-n history survives it.
            self._raise.since = self._clear.since = self._escalate.since = None
            return None
        if self.open is None:
            if self._raise.add(level is Level.ABOVE, now) and now >= self.shelved_until:
                return self._raise_alert(now, _made(evidence).full())
            return None
        if self._clear.add(level is Level.BELOW, now) and self._held_clear(now):
            full = _made(evidence).full()
            return self._clear_alert(now, full, full.reason)
        worse = False
        if level is Level.ABOVE:
            evidence = _made(evidence)
            worse = _RANK[evidence.severity] > _RANK[self.open.severity]
        if self._escalate.add(worse, now):
            return self._escalated(now, _made(evidence).full())
        return None

    def stop(self, now: float, reason: str, **extra: Any) -> Alert | None:
        """Evaluation ends (machine stopped, re-baselined): an open alert clears with ``reason``.

        ``extra`` (default ``stopped: true``) tells upstream why it cleared.
        """
        self._reset()
        if self.open is None:
            return None
        raised = self.open
        extra = extra or {"stopped": True}
        evidence = Evidence(
            raised.score, raised.threshold, raised.signals, reason, now, extra=extra
        )
        return self._clear_alert(now, evidence, reason)

    def acknowledge(self, now: float, by: str) -> Alert | None:
        """The operator has seen the open alert; None when none is open or it already was."""
        if self.open is None or "acknowledged" in self.open.extra:
            return None
        ack = {"by": by, "at": now}
        return self._update(AlertState.ACKNOWLEDGED, now, f"acknowledged by {by}", acknowledged=ack)

    def shelve(self, now: float, until: float, by: str) -> Alert | None:
        """Shelve the cause until ``until``; the event when an alert is open."""
        if until <= now or until == self.shelved_until:
            return None
        self.shelved_until = until
        if self.open is None:
            return None
        shelf = {"by": by, "at": now}
        reason = f"shelved by {by} for {until - now:.0f} s"
        return self._update(AlertState.SHELVED, now, reason, shelved=shelf, shelved_until=until)

    def unshelve(self, now: float, reason: str) -> Alert | None:
        """End the shelve now; the event when an alert is open."""
        if not self.shelved_until:
            return None
        self.shelved_until = 0.0
        if self.open is None:
            return None
        return self._update(AlertState.UNSHELVED, now, reason, shelved=None, shelved_until=None)

    def _reset(self) -> None:
        self._raise.reset()
        self._clear.reset()
        self._escalate.reset()

    def _held_clear(self, now: float) -> bool:
        """A chattering alert clears only once the clear condition held ``Chatter.hold``."""
        if self.open is None or not self.open.extra.get("chattering"):
            return True
        since = self._clear.since
        return since is not None and now - since >= self.chatter.hold

    def _raise_alert(self, now: float, evidence: Evidence) -> Alert:
        self._reset()
        self._raises.append(now)
        while self._raises and self._raises[0] < now - self.chatter.within:
            self._raises.popleft()
        extra = dict(evidence.extra)
        reason = evidence.reason
        if len(self._raises) > self.chatter.count:
            extra["chattering"] = True
            reason += (
                f" (chattering: raised {len(self._raises)} times in "
                f"{self.chatter.within:.0f} s; held until clear for {self.chatter.hold:.0f} s)"
            )
        if evidence.values is not None:
            extra["evidence"] = evidence.values()
        evidence = dataclasses.replace(evidence, reason=reason, extra=extra)
        self.open = self._event(
            alert_id(self.asset, self.cause, now),
            AlertState.RAISED,
            now,
            evidence,
            evidence.severity,
        )
        return self.open

    def _clear_alert(self, now: float, evidence: Evidence, reason: str) -> Alert:
        assert self.open is not None
        raised = self.open
        self.open = None
        self._reset()
        evidence = dataclasses.replace(evidence, reason=reason)
        # The clear keeps the severity of the episode: upstream pairs them by id.
        return self._event(raised.id, AlertState.CLEARED, now, evidence, raised.severity)

    def _escalated(self, now: float, evidence: Evidence) -> Alert:
        assert self.open is not None
        extra = {**self.open.extra, **evidence.extra}
        extra.pop("acknowledged", None)  # the operator has not seen the worse state
        if evidence.values is not None:
            extra["evidence"] = evidence.values()
        reason = f"escalated to {evidence.severity}: {evidence.reason}"
        updated = self._event(
            self.open.id,
            AlertState.SEVERITY,
            now,
            dataclasses.replace(evidence, reason=reason, extra=extra),
            evidence.severity,
        )
        return self._numbered(updated)

    def _update(self, state: AlertState, now: float, reason: str, **extra: Any) -> Alert:
        assert self.open is not None
        merged = {**self.open.extra, **extra}
        merged = {k: v for k, v in merged.items() if v is not None}
        updated = dataclasses.replace(
            self.open, state=state, window_end=now, reason=reason, extra=merged
        )
        return self._numbered(updated)

    def _numbered(self, updated: Alert) -> Alert:
        """Number the update within its episode (the event id must differ per event)."""
        extra = {**updated.extra, "update": int(updated.extra.get("update", 0)) + 1}
        self.open = dataclasses.replace(updated, extra=extra)
        return self.open

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


def _made(evidence: Evidence | Callable[[], Evidence]) -> Evidence:
    return evidence if isinstance(evidence, Evidence) else evidence()
