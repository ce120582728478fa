"""Rules beside models: threshold, rate of change, flatline, bad quality.

Each rule looks at one signal in the windows at every detection step and turns
what it sees into a :class:`~edge_agent.detect.lifecycle.Level`; a
:class:`~edge_agent.detect.lifecycle.Tracker` per rule then raises and clears.

- ``threshold``: the latest good value above ``above`` (or under ``below``),
  continuously for ``for``; it clears once back inside the limits by
  ``hysteresis`` (for ``clear_for``).
- ``rate``: the value changed by more than ``max_change`` within ``over``
  (either direction), continuously for ``for``.
- ``flatline``: a stuck sensor: every sample in the last ``for`` within
  ``tolerance`` of each other (at least two samples, the whole span covered).
- ``bad_quality``: the latest sample is BAD, or there has been none for
  ``max_age``, continuously for ``for``.

A rule that cannot see a fresh good value (BAD, missing, older than
``max_age``) reports UNKNOWN: it neither raises nor clears, and a ``for``
streak restarts. ``bad_quality`` is the rule that watches for that.

With a run-state (the rule's ``run_state``, else its asset's), a rule is not
evaluated while the machine is stopped and its open alert clears, reason
"machine stopped". ``bad_quality`` is the exception: a sensor or a link fails
whether the machine runs or not. A raise carries the signal's recent values
(``extra["evidence"]``, as model alerts do).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from edge_agent.detect.align import SeriesSource, hold
from edge_agent.detect.config import (
    BadQualityRuleConfig,
    FlatlineRuleConfig,
    RateRuleConfig,
    RuleConfig,
    ThresholdRuleConfig,
    _RuleBase,
)
from edge_agent.detect.lifecycle import Evidence, Gate, Level, Tracker
from edge_agent.detect.runstate import RunState
from edge_agent.schema import format_duration
from edge_agent.twin.windows import Windows
from edge_agent.types import Alert, AlertKind, Severity

Verdict = tuple[Level, Callable[[], Evidence] | None]
"""A level and, unless UNKNOWN, how to build its evidence (only an event needs it)."""
_SEVERITY = {s.value: s for s in Severity}
_MIN: Any = np.minimum.reduce  # ndarray.min without its Python wrapper
_MAX: Any = np.maximum.reduce

EVIDENCE_POINTS = 60
"""Values a rule alert carries at most."""
RUN_MAX_AGE = 60.0
"""How old the run-state signal's latest value may be to count (older: unknown, running)."""


class Rule:
    """One configured rule and its alert lifecycle."""

    def __init__(self, config: RuleConfig) -> None:
        self.config = config
        self.tracker = Tracker(
            config.asset_name,
            config.name,
            AlertKind.RULE,
            Gate(hold=0.0 if config.type == "flatline" else config.for_),
            Gate(hold=config.clear_for),
        )
        self.run = RunState.parse(config.run_state) if config.run_state else None

    def window_seconds(self) -> float:
        """History the rule reads from the windows."""
        span = self.config.over if isinstance(self.config, RateRuleConfig) else 0.0
        return span + self.config.for_ + self.config.max_age

    def step(self, windows: SeriesSource, now: float) -> Alert | None:
        """Evaluate at ``now``; a raise or clear event, if any."""
        if self.run is not None and not self._running(windows, now):
            return self.tracker.stop(now, f"machine stopped ({self.run.describe()})")
        level, evidence = self.evaluate(windows, now)
        if level is not Level.ABOVE and self.tracker.settled():
            return None  # the update would change nothing
        if level is Level.ABOVE and evidence is not None and not self.tracker.is_open:
            evidence = _with_values(evidence, self.config.signal, windows, now)
        return self.tracker.update(now, level, evidence)

    def _running(self, windows: SeriesSource, now: float) -> bool:
        # A sensor or a link fails whether the machine runs or not.
        if self.run is None or self.config.type == "bad_quality":
            return True
        return self.run.over(windows, np.array([now]), RUN_MAX_AGE)

    def evaluate(self, windows: SeriesSource, now: float) -> Verdict:
        """The level of the rule's condition at ``now``."""
        c = self.config
        if isinstance(c, ThresholdRuleConfig):
            return _threshold(c, windows, now)
        if isinstance(c, RateRuleConfig):
            return _rate(c, windows, now)
        if isinstance(c, FlatlineRuleConfig):
            return _flatline(c, windows, now)
        return _bad_quality(c, windows, now)


def _with_values(
    evidence: Callable[[], Evidence], signal: str, windows: SeriesSource, now: float
) -> Callable[[], Evidence]:
    """The evidence with the signal's values since the condition began (at least a minute)."""

    def made() -> Evidence:
        built = evidence()
        return dataclasses.replace(built, values=_values(built, signal, windows, now))

    return made


def _values(
    evidence: Evidence, signal: str, windows: SeriesSource, now: float
) -> Callable[[], dict[str, Any]]:
    since = min(evidence.window_start, now - 60.0)

    def values() -> dict[str, Any]:
        ts, vals = windows.series(signal, since)
        ts, vals = np.asarray(ts, np.float64), np.asarray(vals, np.float64)
        keep = ts <= now
        ts, vals = ts[keep], vals[keep]
        pick = np.linspace(0, len(ts) - 1, min(len(ts), EVIDENCE_POINTS)).round()
        pick = pick[np.diff(pick, prepend=-1.0) != 0]  # np.unique imports numpy.ma: 1 MB
        idx = pick.astype(int) if len(ts) else np.array([], int)
        return {
            "ts": [round(float(t), 3) for t in ts[idx]],
            "values": {signal: [None if np.isnan(v) else float(f"{v:.5g}") for v in vals[idx]]},
        }

    return values


def _evidence(
    c: _RuleBase, score: float, threshold: float, reason: Callable[[], str], start: float
) -> Callable[[], Evidence]:
    def made() -> Evidence:
        # Built (reason written) only for an event: most steps raise and clear nothing.
        return Evidence(score, threshold, (c.signal,), reason(), start, _SEVERITY[c.severity])

    return made


def _latest(c: _RuleBase, windows: SeriesSource, now: float) -> tuple[float, float] | None:
    """(ts, value) of the latest sample within ``max_age``, if it is good."""
    since = now - c.max_age
    if isinstance(windows, Windows):
        last = windows.latest(c.signal)
        # The usual case: the last sample to arrive is recent and not after the step.
        if last is not None and since <= last[0] <= now:
            return None if math.isnan(last[1]) else (float(last[0]), float(last[1]))
    ts, values = windows.series(c.signal, since)
    if len(ts) and ts[-1] <= now:  # the usual case: nothing newer than the step
        i = len(ts) - 1
    else:
        causal = np.asarray(ts, np.float64) <= now
        if not causal.any():
            return None
        i = int(np.flatnonzero(causal)[-1])
    value = float(values[i])
    return None if np.isnan(value) else (float(ts[i]), value)


def _held_for(c: _RuleBase) -> str:
    return f" for {format_duration(c.for_)}" if c.for_ else ""


def _threshold(c: ThresholdRuleConfig, windows: SeriesSource, now: float) -> Verdict:
    latest = _latest(c, windows, now)
    if latest is None:
        return Level.UNKNOWN, None
    ts, v = latest
    if c.above is not None and v > c.above:
        high = c.above
        return Level.ABOVE, _evidence(
            c, v, high, lambda: f"{c.signal} = {v:.4g} > {high:g}{_held_for(c)}", now - c.for_
        )
    if c.below is not None and v < c.below:
        low = c.below
        return Level.ABOVE, _evidence(
            c, v, low, lambda: f"{c.signal} = {v:.4g} < {low:g}{_held_for(c)}", now - c.for_
        )
    limit = c.above if c.above is not None else c.below
    assert limit is not None
    inside_high = c.above is None or v <= c.above - c.hysteresis
    inside_low = c.below is None or v >= c.below + c.hysteresis
    if inside_high and inside_low:
        return Level.BELOW, _evidence(
            c, v, limit, lambda: f"{c.signal} = {v:.4g} back within limits", ts
        )
    return Level.BAND, None


def _rate(c: RateRuleConfig, windows: SeriesSource, now: float) -> Verdict:
    latest = _latest(c, windows, now)
    ts, values = windows.series(c.signal, now - c.over - c.max_age)
    start = now - c.over
    before = hold(
        np.asarray(ts, np.float64), np.asarray(values, np.float64), np.array([start]), c.max_age
    )[0]
    if latest is None or np.isnan(before):
        return Level.UNKNOWN, None
    change = latest[1] - float(before)
    if abs(change) > c.max_change:

        def raised() -> str:
            return (
                f"{c.signal} changed by {change:+.4g} within {format_duration(c.over)} "
                f"(limit {c.max_change:g}){_held_for(c)}"
            )

        return Level.ABOVE, _evidence(c, change, c.max_change, raised, start)
    if abs(change) <= c.max_change - c.hysteresis:

        def steady() -> str:
            return f"{c.signal} steady again ({change:+.4g} within {format_duration(c.over)})"

        return Level.BELOW, _evidence(c, change, c.max_change, steady, start)
    return Level.BAND, None


def _flatline(c: FlatlineRuleConfig, windows: SeriesSource, now: float) -> Verdict:
    if _latest(c, windows, now) is None:
        return Level.UNKNOWN, None
    start = now - c.for_
    ts, values = windows.series(c.signal, start - c.max_age)
    if isinstance(windows, Windows) and windows.rows([c.signal]) is not None:
        seen = _seen_in_order(ts, values, start, now, c.max_age)
    else:
        ts, values = np.asarray(ts, np.float64), np.asarray(values, np.float64)
        seen = _seen(ts, values, start, now, c.max_age)
    if seen is None:
        return Level.UNKNOWN, None
    first, low, high = seen
    spread = float(high - low)
    if spread <= c.tolerance:

        def stuck() -> str:
            return (
                f"{c.signal} stuck at {first:.4g} for {format_duration(c.for_)} "
                f"(spread {spread:.3g} <= {c.tolerance:g})"
            )

        return Level.ABOVE, _evidence(c, spread, c.tolerance, stuck, start)
    return Level.BELOW, _evidence(
        c, spread, c.tolerance, lambda: f"{c.signal} moving again (spread {spread:.3g})", start
    )


def _seen(
    ts: np.ndarray, values: np.ndarray, start: float, now: float, max_age: float
) -> tuple[float, float, float] | None:
    """(value held at ``start``, lowest, highest since), or None when one is unknown."""
    first = hold(ts, values, np.array([start]), max_age)[0]
    inside = values[(ts > start) & (ts <= now)]
    if np.isnan(first) or inside.size == 0 or np.isnan(inside).any():
        return None
    seen = np.append(inside, first)
    return float(first), float(seen.min()), float(seen.max())


def _seen_in_order(
    ts: np.ndarray, values: np.ndarray, start: float, now: float, max_age: float
) -> tuple[float, float, float] | None:
    """:func:`_seen` of a series in time order: the held sample and those after it are
    one slice."""
    held = int(ts.searchsorted(start, "right")) - 1
    # Usually nothing is newer than the step: the end is the end.
    end = len(ts) if ts.size and ts[-1] <= now else int(ts.searchsorted(now, "right"))
    if held < 0 or end <= held + 1 or start - ts[held] > max_age + 1e-9:
        return None
    seen = values[held:end]
    low, high = float(_MIN(seen)), float(_MAX(seen))
    if math.isnan(low) or math.isnan(high):  # a BAD sample (NaN) in the span
        return None
    return float(values[held]), low, high


def _bad_quality(c: BadQualityRuleConfig, windows: SeriesSource, now: float) -> Verdict:
    latest = _latest(c, windows, now)
    if latest is not None:
        return Level.BELOW, _evidence(c, 0.0, c.for_, lambda: f"{c.signal} good again", latest[0])
    ts, _ = windows.series(c.signal, now - c.max_age)
    seen = bool(np.asarray(ts).size)

    def reason() -> str:
        what = "BAD quality" if seen else f"no sample for {format_duration(c.max_age)}"
        return f"{c.signal}: {what}{_held_for(c)}"

    return Level.ABOVE, _evidence(c, 1.0, c.for_, reason, now - c.for_)
