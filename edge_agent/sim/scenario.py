"""Fault schedules for the simulated pump skid.

A :class:`Scenario` is a list of :class:`Fault` windows on the plant's clock
(seconds since the plant started). Each fault has a severity envelope in 0..1:
it creeps up over ``ramp_s`` after ``start`` and falls back to zero over
``release_s`` before ``end``, so ``severity(t) > 0`` exactly on
``(start, end)``. The physics model (``physics.py``) turns severities into
signal changes; tests and the demo know when each fault is on from here.

Fault kinds:

* ``bearing_wear``: vibration (Modbus RMS and the serial probe's RMS, peak and
  crest factor) and bearing temperature creep up; motor current rises a little.
* ``cavitation``: discharge pressure oscillates, flow drops, probe RMS rises,
  motor current fluctuates; the suction tank level sinks first.
* ``stuck``: one signal (``signal``) freezes at the value it had when the fault
  began (or at ``value`` when given), without noise.

Two link faults leave the physics alone and act on the plant's peers:

* ``modbus_offline``: the Modbus server stops (clients are dropped, connects are
  refused) and comes back at ``end``: the agent should log one outage and one
  recovery.
* ``probe_garbage``: the serial probe sends corrupted lines instead of good ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

FaultKind = Literal["bearing_wear", "cavitation", "stuck", "modbus_offline", "probe_garbage"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault window on the plant clock.

    Attributes:
        kind: one of :data:`FAULT_KINDS` (see the module docstring).
        start: seconds after plant start when the fault begins.
        end: seconds after plant start when it is over (severity back to 0).
        ramp_s: seconds for the severity to creep from 0 to 1.
        release_s: seconds for it to fall back to 0 before ``end``.
        signal: the frozen signal, for ``stuck`` only.
        value: the frozen value for ``stuck``; ``None`` holds the last value.
    """

    kind: FaultKind
    start: float
    end: float
    ramp_s: float = 5.0
    release_s: float = 1.0
    signal: str = ""
    value: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if not self.end > self.start:
            raise ValueError(f"fault {self.kind}: end {self.end} must be after start {self.start}")
        if self.kind == "stuck" and not self.signal:
            raise ValueError("a stuck fault needs the signal it freezes")

    def severity(self, t: float) -> float:
        """Severity in 0..1 at plant time ``t`` (0 outside ``(start, end)``)."""
        rise = (t - self.start) / self.ramp_s if self.ramp_s > 0 else float(t > self.start)
        fall = (self.end - t) / self.release_s if self.release_s > 0 else float(t < self.end)
        return min(max(min(rise, fall), 0.0), 1.0)

    def active(self, t: float) -> bool:
        """Whether the fault is on at plant time ``t``."""
        return self.start < t < self.end


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named fault schedule.

    Attributes:
        name: the scenario's name, as given to ``edge-agent sim --scenario``.
        faults: the fault windows, in any order; they may overlap.
        duration_s: how long the scenario takes to play out once (all faults over
            and some normal running after the last); the plant keeps running
            normally past it.
        description: one line for people.
    """

    name: str
    faults: tuple[Fault, ...]
    duration_s: float
    description: str = ""

    def severity(self, kind: FaultKind, t: float) -> float:
        """Largest severity at ``t`` of the faults of ``kind`` (0 when none)."""
        return max((f.severity(t) for f in self.faults if f.kind == kind), default=0.0)

    def on(self, kind: FaultKind, t: float) -> bool:
        """Whether a fault of ``kind`` is active at ``t``."""
        return any(f.kind == kind and f.active(t) for f in self.faults)

    def stuck_at(self, t: float) -> list[Fault]:
        """The ``stuck`` faults active at ``t``."""
        return [f for f in self.faults if f.kind == "stuck" and f.active(t)]

    def active(self, t: float) -> list[Fault]:
        """All faults active at ``t``."""
        return [f for f in self.faults if f.active(t)]

    def labels(self, t: np.ndarray) -> dict[str, np.ndarray]:
        """Boolean fault masks over the time grid ``t``, one per fault kind.

        For training and scoring a model: ``labels(t)["bearing_wear"][i]`` is
        True when a bearing-wear fault is on at ``t[i]``.
        """
        masks: dict[str, np.ndarray] = {k: np.zeros(t.shape, dtype=bool) for k in FAULT_KINDS}
        for fault in self.faults:
            masks[fault.kind] |= (t > fault.start) & (t < fault.end)
        return masks


NORMAL = Scenario("normal", (), 600.0, "no faults: normal running with load cycles")

DEMO = Scenario(
    "demo",
    (
        Fault("bearing_wear", start=20.0, end=40.0, ramp_s=6.0, release_s=1.0),
        Fault("stuck", start=25.0, end=50.0, signal="tank_level"),
        Fault("cavitation", start=44.0, end=54.0, ramp_s=2.0, release_s=1.0),
    ),
    70.0,
    "compressed: bearing wear 20-40 s, tank level stuck 25-50 s, cavitation 44-54 s",
)

COMMISSIONING = Scenario(
    "commissioning",
    (
        Fault("bearing_wear", start=300.0, end=900.0, ramp_s=300.0, release_s=5.0),
        Fault("cavitation", start=1200.0, end=1380.0, ramp_s=20.0, release_s=10.0),
        Fault("stuck", start=1600.0, end=1720.0, signal="flow"),
        Fault("stuck", start=1900.0, end=1960.0, signal="motor_current", value=0.0),
        Fault("probe_garbage", start=1000.0, end=1030.0),
        Fault("modbus_offline", start=2000.0, end=2045.0),
    ),
    2100.0,
    "35 min: slow bearing wear 5-15 min, probe garbage 16:40-17:10, cavitation 20-23 min,"
    " flow stuck 26:40-28:40, motor current reads 0 at 31:40-32:40, Modbus offline"
    " 33:20-34:05",
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (NORMAL, DEMO, COMMISSIONING)}


def get_scenario(name: str) -> Scenario:
    """The built-in scenario called ``name``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(sorted(SCENARIOS))
        raise ValueError(f"unknown scenario {name!r}; known: {known}") from None
