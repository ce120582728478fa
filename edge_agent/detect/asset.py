"""One asset scored by its model: aligned window -> normalised -> errors -> score -> alert.

At each detection step the asset's signals are aligned onto the model's step
(:mod:`edge_agent.detect.align`). A window is scored once a new grid point is
``settle`` seconds old (so samples still in flight, polled but not yet flushed
by the recorder, are in) and only when every cell is known. A window with a
gap or a BAD sample is not scored: the step is UNKNOWN for the alert lifecycle
and the reason is logged once (and again when scoring resumes). The score is
the mean of the model's per-signal errors; the reason of an alert names the
signals with the largest share of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from edge_agent.detect.align import WARMING_UP, SeriesSource, align, grid_end, make_grid
from edge_agent.detect.config import AssetConfig
from edge_agent.detect.lifecycle import Evidence, Level, Tracker
from edge_agent.detect.slot import ModelSlot
from edge_agent.errors import ModelError
from edge_agent.types import Alert, AlertKind, Severity

log = logging.getLogger(__name__)


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
        aligned = align(
            windows, self.slot.signals, make_grid(end, card.step, card.window), self.fill_limit
        )
        if aligned.problem:
            self._skip(end, aligned.problem)
            return None
        try:
            errors = self.slot.model.errors(self.slot.model.normalise(aligned.values))[0]
        except ModelError as exc:
            self._skip(end, str(exc))
            return None
        if not np.isfinite(errors).all():
            self._skip(end, "the model returned non-finite errors")
            return None
        self._resume()
        return self._judge(end, errors, float(aligned.grid[0]))

    def _judge(self, end: float, errors: np.ndarray, start: float) -> Alert | None:
        score, threshold = float(errors.mean()), self.threshold
        if score >= threshold:
            level = Level.ABOVE
        elif score < threshold * self.config.clear_below:
            level = Level.BELOW
        else:
            level = Level.BAND
        evidence = self._evidence(score, threshold, errors, start)
        event = self.tracker.update(end, level, evidence)
        self.last = Scored(end, score, threshold, self.tracker.is_open)
        if event is not None and self.config.mode == "shadow":
            log.info(
                "%s (shadow, not sent): alert %s: %s", self.config.name, event.state, event.reason
            )
            return None
        return event

    def _evidence(
        self, score: float, threshold: float, errors: np.ndarray, start: float
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
        critical = score >= threshold * self.config.critical_above
        severity = Severity.CRITICAL if critical else Severity.WARNING
        names = tuple(name for name, _ in top)
        card = self.slot.card
        extra = {
            "model": card.name,
            "model_version": card.version,
            "shares": {name: round(pct, 1) for name, pct in top},
        }
        return Evidence(score, threshold, names, reason, start, severity, extra)

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
