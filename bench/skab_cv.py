"""Choosing the SKAB pump recipe by cross-validation over files: the grid, the rule, the folds.

A recipe is (window, PCA components, threshold factor, alert debounce). The
per-file causal scores depend only on (window, components), so each of those
models is trained and run once (:func:`score_cache`); every factor is then a
threshold on the cached scores (the calibrated threshold is ``factor`` times the
largest calibration score, so it scales linearly), and every debounce is the
agent's own alert lifecycle (:class:`edge_agent.detect.lifecycle.Tracker`) fed
with the levels those scores give, as ``edge-agent replay`` does.

Selection rule (:func:`choose`): among the recipes whose false-alarm rate on the
selection files is at most ``MAX_FAR`` %, the best F1 (rounded to 3 decimals);
ties go to the simpler recipe: fewer components, then shorter window, then the
lighter debounce, then the larger factor (fewer alarms). When no recipe meets
the budget, the lowest FAR wins.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.skab_eval import CAL_ROWS, Run, detect_run
from bench.skab_metrics import nab_scores, outlier_metrics
from edge_agent.detect.lifecycle import Evidence, Gate, Level, Tracker
from edge_agent.detect.model import load_model
from edge_agent.train.fit import Recipe
from edge_agent.train.pipeline import train
from edge_agent.types import AlertKind

WINDOWS = (10, 15, 20, 30)
COMPONENTS = (0, 1, 2)
FACTORS = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
MAX_FAR = 10.0


@dataclass(frozen=True, slots=True)
class Debounce:
    """The asset's alert lifecycle keys: ``raise_after``, ``clear_after``, ``clear_below``."""

    raise_k: int
    raise_n: int
    clear_k: int
    clear_n: int
    clear_below: float

    def __str__(self) -> str:
        if self.raise_n == 1 and self.clear_n == 1 and self.clear_below == 1.0:
            return "none"
        return (
            f"raise {self.raise_k}/{self.raise_n}, clear {self.clear_k}/{self.clear_n} "
            f"< {self.clear_below}x"
        )

    def yaml(self) -> str:
        """The asset config lines that set this lifecycle."""
        return (
            f"      raise_after: {{k: {self.raise_k}, n: {self.raise_n}}}\n"
            f"      clear_after: {{k: {self.clear_k}, n: {self.clear_n}}}\n"
            f"      clear_below: {self.clear_below}\n"
        )


# Lightest first: the tie-break order.
DEBOUNCES = (
    Debounce(1, 1, 1, 1, 1.0),
    Debounce(2, 3, 3, 3, 0.8),
    Debounce(3, 5, 5, 5, 0.8),  # the agent's default
    Debounce(5, 5, 10, 10, 0.8),
)


@dataclass(frozen=True, slots=True)
class Choice:
    """One recipe of the grid."""

    window: int
    components: int
    factor: float
    debounce: Debounce

    def __str__(self) -> str:
        return (
            f"window {self.window}, {self.components} comp., factor {self.factor}, "
            f"debounce {self.debounce}"
        )

    def simplicity(self) -> tuple[int, int, int, float]:
        """Smaller is simpler (the tie-break)."""
        return (self.components, self.window, DEBOUNCES.index(self.debounce), -self.factor)


@dataclass(frozen=True, slots=True)
class Scores:
    """Per-file causal scores of one (window, components) model and its calibration maximum."""

    score: list[np.ndarray]
    base: list[float]


def score_cache(data: Path, folder: Path) -> dict[tuple[int, int], Scores]:
    """Train every (window, components) int8 model once and score every valve1 file with it.

    Training reads only label-free rows: ``anomaly-free.csv`` and the first
    ``CAL_ROWS`` rows of each valve1 file, which the protocol allows for every file.
    """
    from bench.skab_eval import load_runs

    out = {}
    for window, k in itertools.product(WINDOWS, COMPONENTS):
        path = folder / f"m_{window}_{k}.onnx"
        if not path.is_file():
            recipe = Recipe(path.stem, window, k, CAL_ROWS, 1.0, 1.0, 1.0)
            train([data / "anomaly-free"], path, recipe, cal_data=[data / "valve1"])
        model = load_model(path)
        runs = load_runs(data / "valve1", model.card.signals)
        scores, bases = [], []
        for r in runs:
            score, _ = detect_run(model, r.values, CAL_ROWS)
            scores.append(score)
            bases.append(float(np.nanmax(score[:CAL_ROWS])))
        out[(window, k)] = Scores(scores, bases)
    return out


def lifecycle(
    score: np.ndarray, ts: np.ndarray, threshold: float, d: Debounce, start: int = CAL_ROWS
) -> np.ndarray:
    """Alert open per row, the agent's Tracker fed from row ``start`` on (as replay does)."""
    tracker = Tracker(
        "pump", "model", AlertKind.MODEL, Gate(d.raise_k, d.raise_n), Gate(d.clear_k, d.clear_n)
    )
    alarm = np.zeros(score.size, dtype=bool)
    low = threshold * d.clear_below
    for i in range(start, score.size):
        s = float(score[i])
        if math.isnan(s):
            continue
        level = Level.ABOVE if s >= threshold else Level.BELOW if s < low else Level.BAND
        tracker.update(float(ts[i]), level, Evidence(s, threshold, (), "", float(ts[i])))
        alarm[i] = tracker.is_open
    return alarm


class Grid:
    """Alarms of every recipe on every file, computed on first use."""

    def __init__(self, cache: dict[tuple[int, int], Scores], runs: Sequence[Run]) -> None:
        self.cache = cache
        self.runs = runs
        self._alarms: dict[tuple[Choice, int], np.ndarray] = {}

    def choices(self) -> Iterator[Choice]:
        """Every recipe of the grid."""
        for (w, k), f, d in itertools.product(self.cache, FACTORS, DEBOUNCES):
            yield Choice(w, k, f, d)

    def alarm(self, c: Choice, i: int) -> np.ndarray:
        """Alarm per row of file ``i`` under recipe ``c``."""
        key = (c, i)
        if key not in self._alarms:
            s = self.cache[(c.window, c.components)]
            self._alarms[key] = lifecycle(
                s.score[i], self.runs[i].ts, c.factor * s.base[i], c.debounce
            )
        return self._alarms[key]

    def counts(self, c: Choice, files: Sequence[int]) -> dict[str, float]:
        """F1, FAR and MAR of recipe ``c`` over ``files``."""
        preds = [self.alarm(c, i)[CAL_ROWS:] for i in files]
        return outlier_metrics(preds, [self.runs[i].anomaly[CAL_ROWS:] for i in files])


def choose(grid: Grid, files: Sequence[int]) -> tuple[Choice, dict[str, float]]:
    """The recipe the selection rule picks on ``files`` (see the module docstring)."""
    scored = {c: grid.counts(c, files) for c in grid.choices()}
    ok = {c: m for c, m in scored.items() if m["far"] <= MAX_FAR}
    if not ok:
        best = min(scored, key=lambda c: (scored[c]["far"], c.simplicity()))
        return best, scored[best]
    best = min(ok, key=lambda c: (-round(ok[c]["f1"], 3), c.simplicity()))
    return best, ok[best]


def metrics(runs: Sequence[Run], preds: Sequence[np.ndarray]) -> dict[str, float]:
    """Outlier metrics and the three NAB profiles over the test rows."""
    test = [p[CAL_ROWS:] for p in preds]
    out = outlier_metrics(test, [r.anomaly[CAL_ROWS:] for r in runs])
    nab = nab_scores(
        [(r.ts[CAL_ROWS:], p, r.changepoint[CAL_ROWS:]) for r, p in zip(runs, test, strict=True)]
    )
    return {**out, **{f"nab_{k}": v for k, v in nab.items()}}


def folds(n_files: int, n_folds: int) -> list[list[int]]:
    """Contiguous folds of files (``n_folds == n_files``: leave one file out)."""
    edges = np.linspace(0, n_files, n_folds + 1).round().astype(int)
    return [list(range(a, b)) for a, b in itertools.pairwise(edges)]


def cross_validate(
    grid: Grid, n_folds: int
) -> tuple[list[tuple[list[int], Choice, dict[str, float]]], dict[str, float]]:
    """Per fold: choose on the other files, predict the fold; pooled held-out metrics."""
    n = len(grid.runs)
    rows = []
    preds: list[np.ndarray] = [np.zeros(0)] * n
    for test in folds(n, n_folds):
        best, tuned = choose(grid, [i for i in range(n) if i not in test])
        for i in test:
            preds[i] = grid.alarm(best, i)
        rows.append((test, best, tuned))
    return rows, metrics(grid.runs, preds)


def label_free_far(
    data: Path, model_path: Path, runs: Sequence[Run], d: Debounce
) -> dict[str, dict[float, float]]:
    """False-alarm % per factor on normal data only, with no valve1 label read.

    ``anomaly-free``: ``anomaly-free.csv`` cut into runs of the valve1 length, each
    calibrated on its first ``CAL_ROWS`` rows, the rest scored. ``first rows``: each
    valve1 file calibrated on its first ``CAL_ROWS // 2`` rows and scored on the next
    ones up to ``CAL_ROWS`` (rows the protocol guarantees free of anomalies).
    """
    from edge_agent.train.data import read_table

    model = load_model(model_path)
    table = read_table(data / "anomaly-free" / "anomaly-free.csv")
    values = table.matrix(model.card.signals)
    size = int(np.median([r.values.shape[0] for r in runs]))
    cuts = range(0, len(values) - size + 1, size)
    half = CAL_ROWS // 2
    parts = {
        "anomaly-free": [(values[a : a + size], table.ts[a : a + size], CAL_ROWS) for a in cuts],
        "first rows": [(r.values[:CAL_ROWS], r.ts[:CAL_ROWS], half) for r in runs],
    }
    out: dict[str, dict[float, float]] = {}
    for name, pieces in parts.items():
        scored = [(detect_run(model, v, cal)[0], t, cal) for v, t, cal in pieces]
        out[name] = {f: _far(scored, f, d) for f in FACTORS}
    return out


def _far(scored: list[tuple[np.ndarray, np.ndarray, int]], factor: float, d: Debounce) -> float:
    alarms = total = 0
    for score, ts, cal in scored:
        base = float(np.nanmax(score[:cal]))
        alarms += int(lifecycle(score, ts, factor * base, d, cal)[cal:].sum())
        total += score.size - cal
    return 100.0 * alarms / total
