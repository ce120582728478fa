"""One asset scored by its model: aligned window -> normalised -> errors -> score -> alert.

At each detection step the asset's signals are aligned onto the model's step
(:mod:`edge_agent.detect.align`). A window is scored once a new grid point is
``settle`` seconds old (so samples still in flight, polled but not yet flushed
by the recorder, are in) and only when every cell is known. A window with a
gap or a BAD sample is not scored: the step is UNKNOWN for the alert lifecycle
and the reason is logged once (and again when scoring resumes). The score is
the mean of the model's per-signal errors; the reason of an alert names the
signals with the largest share of it; the raise (and an escalation) carries the
window's values of those signals (``extra["evidence"]``: ``ts`` and, per signal,
at most :data:`EVIDENCE_POINTS` values) so a page or upstream can show why.

With a ``run_state``, a window is scored only when the machine ran over all of
it; while it is stopped an open alert is cleared, reason "machine stopped"
(see :mod:`edge_agent.detect.runstate`). With ``rebaseline: {auto: on}`` a
sustained, steady alarm state becomes the new normal
(:mod:`edge_agent.detect.baseline`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.detect.align import (
    WARMING_UP,
    Aligned,
    Aligner,
    SeriesSource,
    grid_end,
    make_grid,
)
from edge_agent.detect.baseline import AutoBaseline, shifted_card
from edge_agent.detect.card import ModelCard
from edge_agent.detect.config import AssetConfig
from edge_agent.detect.lifecycle import Evidence, Level, Tracker
from edge_agent.detect.runstate import RunState
from edge_agent.detect.slot import ModelSlot
from edge_agent.errors import ModelError
from edge_agent.types import Alert, AlertKind, Severity

log = logging.getLogger(__name__)

EVIDENCE_POINTS = 60
"""Values per signal an alert carries at most (a longer window is thinned evenly)."""
RUN_MAX_AGE = 60.0
"""How old the run-state signal's latest value may be to count (older: unknown, running)."""
STOPPED = "machine stopped"
_SUM: Any = np.add.reduce  # ndarray.sum without its Python wrapper


@dataclass(frozen=True, slots=True)
class Scored:
    """The outcome of the latest scored window of an asset."""

    ts: float
    score: float
    threshold: float
    alarm: bool


class AssetDetector:
    """Scores one asset's windows and runs its model alert lifecycle."""

    def __init__(self, config: AssetConfig, slot: ModelSlot) -> None:
        self.config = config
        self.slot = slot
        self.tracker = Tracker(
            config.name,
            "model",
            AlertKind.MODEL,
            config.raise_after.gate(),
            config.clear_after.gate(),
        )
        self.last: Scored | None = None
        self.problem = ""
        self._last_end = float("-inf")
        self.run = RunState.parse(config.run_state) if config.run_state else None
        self.auto: AutoBaseline | None = None
        if config.rebaseline.auto == "on":
            rows = max(2, int(config.rebaseline.after / slot.card.step))
            self.auto = AutoBaseline(rows, config.rebaseline.steady)
        self._previous: ModelCard | None = None
        self._aligner = Aligner(slot.signals)

    @property
    def threshold(self) -> float:
        """The configured threshold, else the card's."""
        return self.config.threshold or self.slot.card.threshold

    @property
    def fill_limit(self) -> float:
        """How old a held value may be: configured, else three model steps."""
        if self.config.fill_limit is not None:
            return self.config.fill_limit
        return 3.0 * self.slot.card.step

    def window_seconds(self) -> float:
        """History the model's window needs, gaps allowance included."""
        card = self.slot.card
        return card.window * card.step + self.fill_limit + self.config.settle

    def step(self, windows: SeriesSource, now: float) -> Alert | None:
        """Score the newest complete window, if a new grid point passed."""
        if self.config.reload == "watch":
            self.slot.refresh()
        card = self.slot.card
        # Score a grid point only once late samples (poll + recorder flush) are in.
        end = grid_end(now - self.config.settle, card.step)
        if end <= self._last_end:
            return None
        self._last_end = end
        grid = make_grid(end, card.step, card.window)
        if self.run is not None and not self.run.over(windows, grid, RUN_MAX_AGE):
            return self._stopped(end)
        aligned = self._align(windows, grid)
        if aligned.problem:
            self._skip(end, aligned.problem)
            return None
        model = self.slot.model
        try:
            errors = model.errors(model.normalise(aligned.values))[0]
        except ModelError as exc:
            self._skip(end, str(exc))
            return None
        score = mean(errors)
        # A finite sum has only finite terms; an infinite one may be an overflow of them.
        if not math.isfinite(score) and not np.isfinite(errors).all():
            self._skip(end, "the model returned non-finite errors")
            return None
        if self.problem:
            self._resume()
        if self._previous is not None and score >= self.threshold:
            errors = self._back_to_previous(aligned.values, errors)
            score = mean(errors)
        event = self._judge(end, errors, score, aligned.grid, aligned.values)
        if self.auto is not None and event is None:
            event = self._watch_baseline(end, aligned.values)
        return event

    def _align(self, windows: SeriesSource, grid: np.ndarray) -> Aligned:
        signals = self.slot.signals
        if self._aligner.signals is not signals:  # a swapped model may order them anew
            self._aligner = Aligner(signals)
        return self._aligner.align(windows, grid, self.fill_limit)

    def _stopped(self, end: float) -> Alert | None:
        """The machine did not run over the whole window: no score, no alarm."""
        assert self.run is not None
        if self.problem != STOPPED:
            log.info("%s: %s (%s): not scored", self.config.name, STOPPED, self.run.describe())
        self.problem = STOPPED
        return self._emit(self.tracker.stop(end, f"{STOPPED} ({self.run.describe()})"))

    def _watch_baseline(self, end: float, window: np.ndarray) -> Alert | None:
        assert self.auto is not None
        card = self.slot.card
        last = self.last
        normal = last is not None and last.score < last.threshold * self.config.clear_below
        shift = self.auto.observe(window, self.tracker.is_open, normal, np.asarray(card.std))
        if shift is None:
            return None
        self._previous = card
        self.slot.use_card(shifted_card(card, shift))
        moved = ", ".join(
            f"{name} {delta:+.3g}" for name, delta in zip(self.slot.signals, shift, strict=True)
        )
        log.warning(
            "%s: re-baselined in memory (new normal): mean moved by %s", self.config.name, moved
        )
        after = self.config.rebaseline.after
        reason = f"re-baselined: a steady new state for {after:.0f} s is the new normal"
        return self._emit(self.tracker.stop(end, reason, rebaselined=True))

    def _back_to_previous(self, values: np.ndarray, errors: np.ndarray) -> np.ndarray:
        """After an automatic re-baseline: a window normal for the old card brings it back.

        Without this, the end of a sustained fault (the machine back in its old state)
        would be called abnormal against the re-baselined mean.
        """
        assert self._previous is not None
        old = self.slot.model.with_card(self._previous)
        before = old.errors(old.normalise(values))[0]
        if float(before.mean()) >= self.threshold * self.config.clear_below:
            return errors
        log.warning("%s: back to the normal before the re-baseline", self.config.name)
        self.slot.use_card(self._previous)
        self._previous = None
        return np.asarray(before, np.float64)

    def _emit(self, event: Alert | None) -> Alert | None:
        if event is not None and self.config.mode == "shadow":
            log.info(
                "%s (shadow, not sent): alert %s: %s", self.config.name, event.state, event.reason
            )
            return None
        return event

    def _judge(
        self, end: float, errors: np.ndarray, score: float, grid: np.ndarray, values: np.ndarray
    ) -> Alert | None:
        threshold = self.threshold
        if score >= threshold:
            level = Level.ABOVE
        elif score < threshold * self.config.clear_below:
            level = Level.BELOW
        else:
            level = Level.BAND
        tracker = self.tracker
        event = None
        # A settled tracker ignores a level that is not ABOVE: no evidence to build.
        if level is Level.ABOVE or not tracker.settled():
            evidence = self._evidence(score, threshold, errors, grid, values)
            event = tracker.update(end, level, evidence)
        self.last = Scored(end, score, threshold, tracker.open is not None)
        return self._emit(event) if event is not None else None

    def _evidence(
        self,
        score: float,
        threshold: float,
        errors: np.ndarray,
        grid: np.ndarray,
        values: np.ndarray,
    ) -> Evidence:
        critical = score >= threshold * self.config.critical_above
        severity = Severity.CRITICAL if critical else Severity.WARNING
        start = float(grid[0])

        def detail() -> Evidence:
            # Built only for an event: most steps raise, clear and escalate nothing.
            return self._explain(score, threshold, errors, grid, values, severity)

        return Evidence(score, threshold, (), "", start, severity, detail=detail)

    def _explain(
        self,
        score: float,
        threshold: float,
        errors: np.ndarray,
        grid: np.ndarray,
        values: np.ndarray,
        severity: Severity,
    ) -> Evidence:
        top = top_signals(errors, self.slot.signals)
        share = ", ".join(f"{name} {pct:.0f}%" for name, pct in top)
        if score >= threshold:
            ratio = score / threshold
            reason = (
                f"anomaly score {score:.3g} >= {threshold:.3g} ({ratio:.1f}x); most from {share}"
            )
        else:
            reason = (
                f"anomaly score {score:.3g} back under {threshold * self.config.clear_below:.3g}"
            )
        names = tuple(name for name, _ in top)
        card = self.slot.card
        extra = {
            "model": card.name,
            "model_version": card.version,
            "shares": {name: round(pct, 1) for name, pct in top},
        }
        signals = self.slot.signals

        def window() -> dict[str, Any]:
            return window_values(grid, values, [signals.index(n) for n in names], names)

        return Evidence(score, threshold, names, reason, float(grid[0]), severity, extra, window)

    def _skip(self, end: float, problem: str) -> None:
        if problem != self.problem:
            level = logging.INFO if problem == WARMING_UP else logging.WARNING
            log.log(level, "%s: window at %.0f not scored: %s", self.config.name, end, problem)
        self.problem = problem
        self.tracker.update(end, Level.UNKNOWN, None)

    def _resume(self) -> None:
        if self.problem:
            log.info("%s: scoring again", self.config.name)
        self.problem = ""


def mean(errors: np.ndarray) -> float:
    """``float(errors.mean())`` of a 1-D float array, bit for bit, without numpy's wrapper.

    numpy sums in the array's type (pairwise), divides by the count as a float64 and
    rounds the quotient back to the array's type.
    """
    return float(errors.dtype.type(float(_SUM(errors)) / errors.shape[0]))


def window_values(
    grid: np.ndarray, values: np.ndarray, columns: list[int], names: tuple[str, ...]
) -> dict[str, Any]:
    """``{"ts": [...], "values": {signal: [...]}}``, at most :data:`EVIDENCE_POINTS` each."""
    steps = np.linspace(0, len(grid) - 1, min(len(grid), EVIDENCE_POINTS)).round()
    pick = steps[np.diff(steps, prepend=-1.0) != 0].astype(int)  # np.unique: numpy.ma, 1 MB
    return {
        "ts": [round(float(t), 3) for t in grid[pick]],
        "values": {
            name: [float(f"{v:.5g}") for v in values[pick, col]]
            for name, col in zip(names, columns, strict=True)
        },
    }


def top_signals(
    errors: np.ndarray, signals: list[str], share: float = 0.6
) -> list[tuple[str, float]]:
    """The signals carrying most of the error (at least ``share``, at most three), with %."""
    total = float(errors.sum())
    if total <= 0:
        return [(signals[0], 0.0)]
    order = np.argsort(-errors, kind="stable")
    out: list[tuple[str, float]] = []
    for i in order[:3]:
        out.append((signals[int(i)], 100.0 * float(errors[i]) / total))
        if sum(p for _, p in out) >= 100.0 * share:
            break
    return out
