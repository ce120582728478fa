"""The rules of a detector stepped together: a rule's own step runs only when it may act.

Most steps of most rules change nothing: the value is within its limits, no alert is
open and nothing is counting towards one (:meth:`Tracker.settled`). When a rule's tracker
is settled and a cheap look shows its level is surely not ABOVE, its step would return
None and change nothing, so it is skipped:

- threshold and bad quality: the signal's latest sample, when it is the one the rule's
  step would read (the last to arrive, no older than ``max_age``, not after the step),
  compared with the limits: a few float comparisons;
- flatline: a few recent samples that already differ by more than the tolerance (or one
  BAD among them), instead of the whole span.

Every other rule (rate, any rule with a run-state), and every rule on a step where it
may raise, clear or count, runs its own :meth:`Rule.step`, exactly as alone: the events
are the same. A plain loop: for tens of rules it costs less than gathering the latest
values into numpy arrays would (about 0.2 us a rule against 2 us per array built).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from edge_agent.detect.align import SeriesSource
from edge_agent.detect.config import BadQualityRuleConfig, FlatlineRuleConfig, ThresholdRuleConfig
from edge_agent.detect.rules import Rule
from edge_agent.twin.windows import Windows
from edge_agent.types import Alert

Limits = tuple[str, float, float, float, bool]
"""Threshold or bad quality: signal, max_age, raise above, raise below, and whether a BAD
latest sample is quiet. Checked inline in the loop (a call costs as much as the check)."""
Quiet = Callable[[Windows, float], bool]
"""True when a rule's level at ``now`` is surely not ABOVE (so a settled rule may skip)."""


def plan(rule: Rule) -> Limits | Quiet | None:
    """How to see that a rule's step would be quiet, or None when only its step can say."""
    c = rule.config
    if rule.run is not None:
        return None
    if isinstance(c, ThresholdRuleConfig):
        # BAD latest sample: UNKNOWN, which a settled tracker ignores.
        above = math.inf if c.above is None else c.above
        below = -math.inf if c.below is None else c.below
        return c.signal, c.max_age, above, below, True
    if isinstance(c, BadQualityRuleConfig):
        # A good latest sample is BELOW; a BAD one may raise.
        return c.signal, c.max_age, math.inf, -math.inf, False
    if isinstance(c, FlatlineRuleConfig):
        return _Moving(c.signal, c.for_, c.tolerance)
    return None


class _Moving:
    """A flatline rule's level is not ABOVE while two samples of its span differ by more
    than the tolerance (it is then BELOW) or one is BAD (UNKNOWN). Every sample in the
    windows between ``now - back`` and ``now`` is in that span when ``back`` is shorter than
    ``for``, so their spread is a witness; ``back`` doubles when it saw too little and
    halves when it saw plenty, up to half of ``for``."""

    def __init__(self, signal: str, span: float, tolerance: float) -> None:
        self.signal = signal
        self.longest = span / 2
        self.tolerance = tolerance
        self.back = min(2.0, self.longest)

    def __call__(self, windows: Windows, now: float) -> bool:
        since = now - self.back
        found = windows.recent(self.signal, since)
        if found is None:
            ts, values = windows.series(self.signal, since)
            found = ts.tolist(), values.tolist()
        # A few floats: Python's min/max cost less than numpy calls. The windows' series
        # hold no NaN time. A NaN value (BAD) may hide a spread from min/max, never make
        # one: it only costs a look at the whole span (where it is UNKNOWN, also quiet).
        times, seen = found
        if len(times) > 1 and max(times) <= now and max(seen) - min(seen) > self.tolerance:
            if len(times) > 8:
                self.back /= 2
            return True
        self.back = min(2 * self.back, self.longest)
        return False


class RuleBatch:
    """Steps a list of rules, skipping those whose step would do nothing."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.assets = list(dict.fromkeys(rule.tracker.asset for rule in rules))
        """The assets the rules' alerts belong to, in rule order."""
        self._each = [(i, rule, plan(rule)) for i, rule in enumerate(rules)]
        self._settled = [False] * len(rules)

    def unsettle(self) -> None:
        """A tracker changed outside a step (acknowledge, shelve, restore): look again."""
        self._settled = [False] * len(self.rules)

    def step(self, windows: SeriesSource, now: float) -> list[Alert]:
        """Every rule's event at ``now``, in rule order."""
        twin = windows if isinstance(windows, Windows) else None
        settled = self._settled
        latest = twin.latest if twin is not None else None
        events = []
        for i, rule, quick in self._each:
            if settled[i] and latest is not None:
                if isinstance(quick, tuple):
                    # The latest sample, when it is the one the rule reads (rules._latest's
                    # usual case: no older than max_age, not after now), within the limits.
                    signal, max_age, above, below, bad_is_quiet = quick
                    last = latest(signal)
                    if last is not None and now - max_age <= last[0] <= now:
                        value = last[1]
                        if bad_is_quiet if value != value else not (value > above or value < below):
                            continue
                elif quick is not None and twin is not None and quick(twin, now):
                    continue
            event = rule.step(windows, now)
            settled[i] = rule.tracker.settled()
            if event is not None:
                events.append(event)
        return events
