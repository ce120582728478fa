"""Remaining useful life: from a prognostic model, or from the trend of the health index.

Two ways to a :class:`Prognosis` of one asset:

``model``
    :class:`PrognosticAsset` feeds each complete raw window (aligned on the
    card's step, as for anomaly models) to a prognostic model and records its
    output ``rul`` in the card's unit (e.g. cycles). The first ``window - 1``
    steps of a run give none (warm-up); a gap or a BAD value gives none for
    that step. At the card's ``cap`` the life is "at least ``cap``".
``trend``
    :class:`HealthTrend` keeps the health index of each scored window of an
    anomaly model, ``100 - 50 x score / threshold`` (the asset's health before
    alert caps, not clamped: 50 at the alarm threshold), over the last
    ``window`` seconds, and fits a robust line to it (:func:`robust_line`:
    Siegel's repeated median, on at most :data:`MAX_POINTS` bucket medians).
    While the line falls, the time until it reaches 50 is the remaining life in
    seconds; the interval comes from a distribution-free interval of the slope
    at ``confidence`` (Sen's): the steepest slope gives ``low``,
    the flattest ``high`` (``None`` = unbounded when the interval reaches a
    flat or rising line). A line that does not fall gives ``rul`` ``None``.
    The interval covers the slope's uncertainty only, not the level's.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from edge_agent.detect.align import WARMING_UP, Aligner, SeriesSource, grid_end, make_grid
from edge_agent.detect.config import AssetConfig, PrognosisConfig
from edge_agent.detect.prognostic import PrognosticModel
from edge_agent.detect.slot import match_signals
from edge_agent.errors import ModelError

log = logging.getLogger(__name__)

MAX_POINTS = 60
"""Points the trend fit uses at most (bucket medians): 1,770 pairwise slopes."""
ALARM_HEALTH = 50.0
"""The health index at the alarm threshold (score = threshold)."""


@dataclass(frozen=True, slots=True)
class Prognosis:
    """One estimate of an asset's remaining life.

    Attributes:
        asset: the asset.
        ts: when it was estimated (the window's end), epoch seconds.
        method: ``model`` or ``trend``.
        rul: remaining life in ``unit``; None when the trend does not fall.
        low: lower end of the interval (trend), else None.
        high: upper end (trend); None when unbounded or not applicable.
        unit: ``s`` for a trend, the card's unit for a model.
        detail: method-specific facts (model name/version/cap; trend health, slope).
    """

    asset: str
    ts: float
    method: str
    rul: float | None
    low: float | None = None
    high: float | None = None
    unit: str = "s"
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The message body fields (see :func:`edge_agent.forward.encode.encode_prognosis`)."""
        return {
            "asset": self.asset,
            "ts": self.ts,
            "method": self.method,
            "rul": self.rul,
            "low": self.low,
            "high": self.high,
            "unit": self.unit,
            **self.detail,
        }


def robust_line(
    t: np.ndarray, y: np.ndarray, confidence: float
) -> tuple[float, float, float, float]:
    """``(slope, intercept, slope_low, slope_high)`` of a robust line through ``(t, y)``.

    The slope is Siegel's repeated median (the median over points of the median
    slope to every other point): a run of outlying windows at the newest end,
    which a plain Theil-Sen median of all pairs leans towards, moves it little.
    The interval has the width of Sen's distribution-free interval of the
    pairwise slopes at ``confidence``, placed around that slope.
    """
    n = len(t)
    dt = t[np.newaxis, :] - t[:, np.newaxis]
    dy = y[np.newaxis, :] - y[:, np.newaxis]
    with np.errstate(divide="ignore", invalid="ignore"):
        pair = np.where(dt != 0, dy / dt, np.nan)
    per_point = np.nanmedian(np.where(np.eye(n, dtype=bool), np.nan, pair), axis=1)
    if not np.isfinite(per_point).any():
        return 0.0, float(np.median(y)), 0.0, 0.0
    slope = float(np.nanmedian(per_point))
    intercept = float(np.median(y - slope * t))
    slopes = np.sort(pair[np.triu_indices(n, k=1)])
    slopes = slopes[np.isfinite(slopes)]
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    c = z * math.sqrt(n * (n - 1) * (2 * n + 5) / 18.0)
    count = slopes.size
    lo = int(max(0, math.floor((count - c) / 2)))
    hi = int(min(count - 1, math.ceil((count + c) / 2)))
    centre = float(np.median(slopes))
    return slope, intercept, slope - (centre - slopes[lo]), slope + (slopes[hi] - centre)


def _buckets(t: np.ndarray, y: np.ndarray, most: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``most`` points: medians of equal-count runs (keeps the fit O(most^2))."""
    if len(t) <= most:
        return t, y
    parts = np.array_split(np.arange(len(t)), most)
    return (
        np.array([np.median(t[p]) for p in parts]),
        np.array([np.median(y[p]) for p in parts]),
    )


class HealthTrend:
    """The health index of one asset over a sliding span, and its time to the alarm."""

    def __init__(self, asset: str, config: PrognosisConfig) -> None:
        self.asset = asset
        self.config = config
        self._points: deque[tuple[float, float]] = deque()

    def observe(self, ts: float, score: float, threshold: float) -> None:
        """Add the health index of one scored window."""
        self._points.append((ts, 100.0 - 50.0 * score / threshold))
        while self._points and self._points[0][0] < ts - self.config.window:
            self._points.popleft()

    def estimate(self, now: float) -> Prognosis | None:
        """The prognosis at ``now``; None with fewer than ``min_points`` points in the span."""
        while self._points and self._points[0][0] < now - self.config.window:
            self._points.popleft()
        if len(self._points) < self.config.min_points:
            return None
        data = np.array(self._points, dtype=np.float64)
        t, y = _buckets(data[:, 0] - now, data[:, 1], MAX_POINTS)
        slope, level, steep, flat = robust_line(t, y, self.config.confidence)
        detail = {
            "health": round(level, 2),
            "alarm_health": ALARM_HEALTH,
            "slope_per_hour": round(slope * 3600.0, 4),
            "points": len(self._points),
            "window": self.config.window,
        }
        rul, low, high = time_to(level, slope, steep, flat)
        return Prognosis(self.asset, now, "trend", rul, low, high, "s", detail)


def time_to(
    level: float, slope: float, steep: float, flat: float
) -> tuple[float | None, float | None, float | None]:
    """Seconds until a line at ``level`` falling by ``slope``/s reaches the alarm health."""
    if level <= ALARM_HEALTH:
        return 0.0, 0.0, 0.0
    margin = level - ALARM_HEALTH

    def until(rate: float) -> float | None:
        return margin / -rate if rate < 0 else None

    return until(slope), until(steep), until(flat)


class PrognosticAsset:
    """Runs one asset's prognostic model on each new complete window."""

    def __init__(self, config: AssetConfig, model: PrognosticModel) -> None:
        self.config = config
        self.model = model
        who = f"asset {config.name}"
        self.signals = match_signals(model.card.signals, config.signals, who)
        self._aligner = Aligner(self.signals)
        self.last: Prognosis | None = None
        self.problem = ""
        self._last_end = float("-inf")

    @property
    def fill_limit(self) -> float:
        """How old a held value may be: configured, else three model steps."""
        if self.config.fill_limit is not None:
            return self.config.fill_limit
        return 3.0 * self.model.card.step

    def window_seconds(self) -> float:
        """History the model's window needs, gaps allowance included."""
        card = self.model.card
        return card.window * card.step + self.fill_limit + self.config.settle

    def step(self, windows: SeriesSource, now: float) -> Prognosis | None:
        """The RUL of the newest complete window, if a new grid point passed."""
        card = self.model.card
        end = grid_end(now - self.config.settle, card.step)
        if end <= self._last_end:
            return None
        self._last_end = end
        grid = make_grid(end, card.step, card.window)
        aligned = self._aligner.align(windows, grid, self.fill_limit)
        if aligned.problem:
            self._skip(end, aligned.problem)
            return None
        try:
            rul = float(self.model.predict(aligned.values)[0])
        except ModelError as exc:
            self._skip(end, str(exc))
            return None
        if self.problem:
            log.info("%s: remaining life estimated again", self.config.name)
        self.problem = ""
        detail = {
            "model": card.name,
            "model_version": card.version,
            "cap": card.cap,
            "at_cap": rul >= card.cap - 1e-6,
        }
        self.last = Prognosis(self.config.name, end, "model", rul, unit=card.unit, detail=detail)
        return self.last

    def _skip(self, end: float, problem: str) -> None:
        if problem != self.problem:
            level = logging.INFO if problem == WARMING_UP else logging.WARNING
            log.log(level, "%s: no remaining life at %.0f: %s", self.config.name, end, problem)
        self.problem = problem
