"""Signal model of a centrifugal pump skid: deterministic for a seed, no I/O.

The skid runs a load cycle (the duty cycle of the process it feeds: about 45 %
of a 4-minute period at high load, the rest at low load, with smooth ramps and a
slow random drift). Everything follows the load:

* flow and motor current rise with load; discharge pressure rises with its square
  (the system curve); the discharge valve position is the load setpoint;
* bearing temperature follows motor current through a 90 s thermal lag;
* vibration rises with load; the serial probe measures housing acceleration
  (RMS and peak in g, housing temperature);
* the suction tank level sinks when the pump draws more, with a 45 s lag;
* inlet temperature drifts slowly (hourly swing).

Each signal carries sensor noise. Faults from a :class:`~edge_agent.sim.scenario.Scenario`
change the signals while their severity is above zero (see that module).

:class:`PumpSkid` is stepped forward in time (``at(t)`` with growing ``t``); the same
sequence of times and the same seed give the same values. :func:`simulate` runs it
over a regular grid, and :func:`write_csv` stores such a series.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from edge_agent.sim.scenario import NORMAL, Scenario, get_scenario

Protocol = Literal["modbus", "opcua", "serial"]


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """What one simulated signal is.

    Attributes:
        name: key in :meth:`PumpSkid.at` and :func:`simulate` results.
        unit: engineering unit.
        protocol: which plant server publishes it.
        description: one line for people.
    """

    name: str
    unit: str
    protocol: Protocol
    description: str


SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("motor_current", "A", "modbus", "pump motor current"),
    SignalSpec("bearing_temp", "degC", "modbus", "drive-end bearing temperature"),
    SignalSpec("vibration_rms", "mm/s", "modbus", "bearing vibration velocity RMS"),
    SignalSpec("discharge_pressure", "bar", "modbus", "pump discharge pressure"),
    SignalSpec("flow", "m3/h", "modbus", "discharge flow"),
    SignalSpec("tank_level", "%", "opcua", "suction tank level"),
    SignalSpec("valve_position", "%", "opcua", "discharge control valve opening"),
    SignalSpec("inlet_temp", "degC", "opcua", "pumped liquid temperature at the inlet"),
    SignalSpec("probe_rms", "g", "serial", "vibration probe: acceleration RMS"),
    SignalSpec("probe_peak", "g", "serial", "vibration probe: acceleration peak"),
    SignalSpec("probe_temp", "degC", "serial", "vibration probe: housing temperature"),
)
SIGNAL_NAMES: tuple[str, ...] = tuple(s.name for s in SIGNALS)

# The load cycle: period, share of it at high load, the two load levels, and how
# sharp the ramps between them are (tanh gain; 6 gives ramps of about 15 s).
CYCLE_S = 240.0
DUTY = 0.45
LOAD_LOW = 0.55
LOAD_HIGH = 0.9
_RAMP_GAIN = 6.0

# Time constants (s) of the slow states.
_TAU_BEARING = 90.0
_TAU_LEVEL = 45.0
_TAU_LOAD_DRIFT = 120.0
_TAU_INLET_DRIFT = 600.0
_N_NOISE = 16  # standard normals drawn per step


def duty_load(t: float, phase: float = 0.0) -> float:
    """Deterministic part of the load (0..1) at time ``t``: the duty cycle."""
    u = ((t + phase) % CYCLE_S) / CYCLE_S
    on = 0.5 + 0.5 * math.tanh(_RAMP_GAIN * (math.cos(2 * math.pi * u) - math.cos(math.pi * DUTY)))
    return LOAD_LOW + (LOAD_HIGH - LOAD_LOW) * on


def _ou(x: float, dt: float, tau: float, sd: float, z: float) -> float:
    """One exact step of an Ornstein-Uhlenbeck drift: stationary std ``sd``."""
    a = math.exp(-dt / tau)
    return a * x + sd * math.sqrt(1.0 - a * a) * z


def _lag(y: float, target: float, dt: float, tau: float) -> float:
    """One step of a first-order lag towards ``target``."""
    return y + (target - y) * (1.0 - math.exp(-dt / tau))


class PumpSkid:
    """The pump skid's signals, stepped forward in time.

    Args:
        seed: seed of the noise and of the load cycle's phase.
        scenario: the fault schedule (a :class:`Scenario` or a built-in name).
    """

    def __init__(self, seed: int = 0, scenario: Scenario | str = NORMAL) -> None:
        self.seed = seed
        self.scenario = get_scenario(scenario) if isinstance(scenario, str) else scenario
        self._rng = np.random.default_rng(seed)
        self._phase = float(np.random.default_rng([seed, 1]).uniform(0.0, CYCLE_S))
        self._t: float | None = None
        self._load_drift = 0.0
        self._inlet_drift = 0.0
        self._bearing = 0.0
        self._level = 0.0
        self._held: dict[tuple[str, float], float] = {}
        for fault in self.scenario.faults:
            if fault.kind == "stuck" and fault.signal not in SIGNAL_NAMES:
                raise ValueError(f"stuck fault on unknown signal {fault.signal!r}")

    def at(self, t: float) -> dict[str, float]:
        """All signal values at plant time ``t`` (seconds since start).

        Times must not go backwards: the model integrates its lags from the
        previous call.

        Raises:
            ValueError: if ``t`` is earlier than the previous call's.
        """
        z = self._rng.standard_normal(_N_NOISE)
        dt = self._advance(t)
        load = self._load(t, dt, z[0])
        wear = self.scenario.severity("bearing_wear", t)
        cav = self.scenario.severity("cavitation", t)
        values = self._drive(t, load, wear, cav, z)
        values |= self._thermal(t, dt, load, wear, z)
        values |= self._suction(dt, load, cav, z)
        values |= self._probe(load, wear, cav, values["bearing_temp"], z)
        self._freeze_stuck(t, values)
        return values

    def _advance(self, t: float) -> float:
        if self._t is not None and t < self._t:
            raise ValueError(f"time went backwards: {t} after {self._t}")
        dt = 0.0 if self._t is None else t - self._t
        if self._t is None:
            self._start(t)
        self._t = t
        return dt

    def _start(self, t: float) -> None:
        """Begin in the steady state of the load at ``t`` (no warm-up transient)."""
        load = duty_load(t, self._phase)
        self._bearing = self._bearing_target(t, 9.0 + 21.0 * load)
        self._level = self._level_target(load, 0.0)

    def _load(self, t: float, dt: float, z: float) -> float:
        self._load_drift = _ou(self._load_drift, dt, _TAU_LOAD_DRIFT, 0.03, z)
        return min(max(duty_load(t, self._phase) + self._load_drift, 0.3), 1.0)

    def _drive(
        self, t: float, load: float, wear: float, cav: float, z: np.ndarray
    ) -> dict[str, float]:
        """Hydraulics and motor: flow, pressure, current, vibration, valve."""
        # Cavitation: vapour bubbles collapse irregularly, so pressure swings at
        # about 0.37 Hz with a random part, flow and head drop, current wobbles.
        swing = 0.7 * math.sin(2 * math.pi * 0.37 * t) + 0.35 * z[1]
        return {
            "flow": 110.0 * load * (1.0 - 0.2 * cav) + 0.8 * z[2],
            "discharge_pressure": 1.2
            + 4.0 * load**2 * (1.0 - 0.12 * cav)
            + cav * swing
            + 0.03 * z[3],
            "motor_current": 9.0 + 21.0 * load + 1.2 * wear - 1.5 * cav + (0.25 + 0.8 * cav) * z[4],
            "vibration_rms": 1.1
            + 1.4 * load
            + 3.0 * wear
            + 1.2 * cav
            + 0.06 * (1.0 + load + 3.0 * cav) * z[5],
            "valve_position": 20.0 + 70.0 * load + 0.2 * z[6],
        }

    def _bearing_target(self, t: float, current: float) -> float:
        # Friction heat rises with current (wear heat is added in _thermal).
        return self._inlet(t) + 10.0 + 0.8 * current

    def _inlet(self, t: float) -> float:
        return 16.0 + 3.0 * math.sin(2 * math.pi * (t + 60 * self._phase) / 3600.0)

    def _thermal(
        self, t: float, dt: float, load: float, wear: float, z: np.ndarray
    ) -> dict[str, float]:
        """Bearing temperature (lagging current) and inlet temperature."""
        self._inlet_drift = _ou(self._inlet_drift, dt, _TAU_INLET_DRIFT, 0.3, z[7])
        # The lag follows the noise-free current (short spikes do not heat). Wear
        # heat is added directly: its severity already creeps (ramp_s), and
        # through the 90 s lag it would not show within the demo's fault window.
        target = self._bearing_target(t, 9.0 + 21.0 * load)
        self._bearing = _lag(self._bearing, target, dt, _TAU_BEARING)
        return {
            "bearing_temp": self._bearing + 14.0 * wear + 0.05 * z[8],
            "inlet_temp": self._inlet(t) + self._inlet_drift + 0.05 * z[9],
        }

    def _level_target(self, load: float, cav: float) -> float:
        # More draw, lower level; cavitation comes with a sinking suction level.
        return 62.0 - 30.0 * (load - 0.7) - 20.0 * cav

    def _suction(self, dt: float, load: float, cav: float, z: np.ndarray) -> dict[str, float]:
        self._level = _lag(self._level, self._level_target(load, cav), dt, _TAU_LEVEL)
        return {"tank_level": self._level + 0.15 * z[10]}

    def _probe(
        self, load: float, wear: float, cav: float, bearing: float, z: np.ndarray
    ) -> dict[str, float]:
        """The serial vibration probe: acceleration RMS/peak and housing temperature."""
        rms = 0.18 + 0.15 * load + 0.9 * wear + 0.4 * cav + 0.015 * z[11]
        # Bearing defects are impacts: the crest factor (peak/RMS) rises first.
        crest = 3.2 + 2.5 * wear + 0.2 * z[12]
        return {
            "probe_rms": max(rms, 0.01),
            "probe_peak": max(rms * crest, 0.01),
            "probe_temp": bearing - 3.0 + 0.1 * z[13],
        }

    def _freeze_stuck(self, t: float, values: dict[str, float]) -> None:
        active = self.scenario.stuck_at(t)
        keys = {(f.signal, f.start) for f in active}
        self._held = {k: v for k, v in self._held.items() if k in keys}
        for fault in active:
            key = (fault.signal, fault.start)
            if key not in self._held:
                held = values[fault.signal] if fault.value is None else fault.value
                self._held[key] = held
            values[fault.signal] = self._held[key]


def probe_line(values: dict[str, float]) -> str:
    """The serial probe's line for one reading, e.g. ``VIB,rms=0.31,peak=1.20,temp=41.8``."""
    return (
        f"VIB,rms={values['probe_rms']:.2f},peak={values['probe_peak']:.2f},"
        f"temp={values['probe_temp']:.1f}"
    )


PROBE_LINE_REGEX = r"^VIB,rms=(?P<rms>[-0-9.]+),peak=(?P<peak>[-0-9.]+),temp=(?P<temp>[-0-9.]+)$"
"""A regex with named groups that parses :func:`probe_line` output."""


def simulate(
    duration_s: float,
    step_s: float = 1.0,
    seed: int = 0,
    scenario: Scenario | str = NORMAL,
    start_s: float = 0.0,
) -> dict[str, np.ndarray]:
    """Run the skid over a regular time grid.

    Args:
        duration_s: seconds to simulate.
        step_s: seconds between samples.
        seed: noise seed; the same arguments give the same arrays.
        scenario: fault schedule (a :class:`Scenario` or a built-in name).
        start_s: plant time of the first sample.

    Returns:
        ``"t"`` (plant seconds) and one float64 array per name in :data:`SIGNAL_NAMES`.

    Raises:
        ValueError: for a non-positive step or negative duration.
    """
    if step_s <= 0 or duration_s < 0:
        raise ValueError(f"need step_s > 0 and duration_s >= 0, got {step_s}, {duration_s}")
    t = start_s + np.arange(round(duration_s / step_s)) * step_s
    skid = PumpSkid(seed, scenario)
    rows = np.empty((t.size, len(SIGNAL_NAMES)))
    for i, ti in enumerate(t.tolist()):
        values = skid.at(ti)
        rows[i] = [values[name] for name in SIGNAL_NAMES]
    series = {"t": t}
    series |= {name: rows[:, j].copy() for j, name in enumerate(SIGNAL_NAMES)}
    return series


def write_csv(path: Path, series: dict[str, np.ndarray]) -> None:
    """Write a :func:`simulate` result as CSV: a header, then one row per time."""
    names = list(series)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        columns = [series[n].tolist() for n in names]
        for row in zip(*columns, strict=True):
            writer.writerow([f"{v:.6g}" for v in row])


def read_csv(path: Path) -> dict[str, np.ndarray]:
    """Read a CSV written by :func:`write_csv` back into arrays."""
    data = np.genfromtxt(path, delimiter=",", names=True, dtype=float)
    if data.ndim == 0:
        data = data.reshape(1)
    names = data.dtype.names or ()
    return {name: np.asarray(data[name], dtype=float) for name in names}
