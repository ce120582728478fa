"""The write policy: which command may reach a device, decided before any byte is sent.

A command is refused, with a reason a person can act on, when writes are off, the
signal is unknown or has no ``write:`` block, the value is not of the signal's type
or outside its range, the command is older than ``writes.max_age``, a write to the
same signal is still in flight, or the signal's rate limit has not passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from edge_agent.commands.config import WriteLimits, WritesConfig

Status = Literal["done", "refused", "failed"]
Value = float | int | bool


@dataclass(frozen=True, slots=True)
class Command:
    """One request to write one signal.

    Attributes:
        id: the requester's id, echoed in the reply (the idempotency key).
        signal: the signal to write (``<source>.<name>``, lowercase).
        value: the value, in the signal's engineering unit.
        origin: where it came from (``mqtt:<sink>``, ``sparkplug:<sink>``).
        ts: when the requester sent it (epoch seconds), if it said.
    """

    id: str
    signal: str
    value: Value
    origin: str
    ts: float | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """How one command ended: exactly one per command.

    Attributes:
        id: the command's id.
        signal: the signal it named.
        value: the value it asked for.
        status: ``done`` (written and read back equal), ``refused`` (nothing was
            sent to the device) or ``failed`` (sent, but refused by the device,
            unanswered, or read back different).
        reason: why, for ``refused`` and ``failed`` ("" when done).
        read_back: the value read back after the write (None when not read).
        origin: the command's origin.
        ts: when it ended, epoch seconds.
        elapsed: seconds from arrival to the end.
    """

    id: str
    signal: str
    value: Value | None
    status: Status
    reason: str
    read_back: float | None
    origin: str
    ts: float
    elapsed: float


@dataclass(frozen=True, slots=True)
class Target:
    """A writable signal: its limits and whether it holds a bool."""

    limits: WriteLimits
    boolean: bool


@dataclass
class Policy:
    """Checks commands against the config; remembers writes in flight and their times.

    Args:
        config: the ``writes:`` section.
        targets: the writable signals (those with a ``write:`` block).
        known: every signal of the agent (to tell "unknown" from "not writable").
    """

    config: WritesConfig
    targets: dict[str, Target]
    known: set[str]
    busy: set[str] = field(default_factory=set)
    last: dict[str, float] = field(default_factory=dict)

    def refusal(self, command: Command, now: float) -> str | None:
        """Why ``command`` may not be sent (None: it may)."""
        if self.config.mode != "on":
            return "writes are off in this agent's config (writes.mode)"
        target = self.targets.get(command.signal)
        if target is None:
            if command.signal in self.known:
                return f"signal {command.signal} is not writable (no write: block in the config)"
            return f"unknown signal {command.signal!r}"
        if command.ts is not None and now - command.ts > self.config.max_age:
            return f"expired: sent {now - command.ts:.0f} s ago (writes.max_age)"
        return _value_refusal(target, command.value) or self._pace(command.signal, target, now)

    def _pace(self, signal: str, target: Target, now: float) -> str | None:
        if signal in self.busy:
            return f"a write to {signal} is still in progress"
        gap = target.limits.min_interval
        gap = self.config.min_interval if gap is None else gap
        last = self.last.get(signal)
        if last is not None and now - last < gap:
            wait = gap - (now - last)
            return f"rate limit: one write per {gap:g} s to {signal}; next in {wait:.2f} s"
        return None

    def begin(self, signal: str, now: float) -> None:
        """A write to ``signal`` goes to the device now."""
        self.busy.add(signal)
        self.last[signal] = now

    def end(self, signal: str) -> None:
        """The write to ``signal`` is over."""
        self.busy.discard(signal)


def _value_refusal(target: Target, value: Value) -> str | None:
    if target.boolean:
        if isinstance(value, bool) or value in (0, 1):
            return None
        return f"expected a boolean (true/false or 1/0), got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected a number, got {value!r}"
    if not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    low, high = target.limits.min, target.limits.max
    if (low is not None and value < low) or (high is not None and value > high):
        return f"{value:g} is outside the allowed range {low:g}..{high:g}"
    return None
