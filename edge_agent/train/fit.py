"""Fitting the window models: normalisation, PCA residual, per-signal spreads.

Pure numpy; see :mod:`edge_agent.train.pipeline` for the command and the recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.errors import ModelError


@dataclass(frozen=True, slots=True)
class Recipe:
    """Training choices (the CLI flags)."""

    name: str
    window: int
    components: int
    calibrate_rows: int | None
    quantile: float
    factor: float
    step: float


def std_floor(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Same floor as :func:`edge_agent.detect.model.calibrate_card`: no division by ~0."""
    return np.asarray(np.maximum(std, np.maximum(np.abs(mean) * 1e-3, 1e-6)))


def normalise(rows: np.ndarray, cal: int) -> np.ndarray:
    """Normalise ``rows`` by the mean/std of their first ``cal`` rows."""
    mean = rows[:cal].mean(axis=0)
    return np.asarray((rows - mean) / std_floor(mean, rows[:cal].std(axis=0)))


def smoothed(z: np.ndarray, window: int) -> np.ndarray:
    """Causal moving mean: row i is the mean of rows i..i+window-1 (``[T-window+1, n]``)."""
    csum = np.cumsum(np.vstack([np.zeros((1, z.shape[1])), z]), axis=0)
    return np.asarray((csum[window:] - csum[:-window]) / window)


def fit_pca(runs: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Residual projection ``I - P P^T`` of the top ``k`` principal directions.

    Every run weighs the same (the mean of per-run covariances), so one long
    file does not outvote many short ones.
    """
    n = runs[0].shape[1]
    if k == 0:
        return np.eye(n)
    if not 0 < k < n:
        raise ModelError(f"--components must be in 0..{n - 1}, got {k}")
    cov = np.mean([np.cov(z, rowvar=False, bias=True) for z in runs], axis=0)
    _, vecs = np.linalg.eigh(cov)
    p = vecs[:, ::-1][:, :k]
    return np.asarray(np.eye(n) - p @ p.T)


def drift_variance(
    runs: Sequence[Sequence[np.ndarray]], res: np.ndarray, window: int
) -> np.ndarray:
    """Per-signal spread of the smoothed residual after a short calibration.

    Each normal stretch is calibrated on its first eighth and quarter, then the
    squared smoothed residual of the rest is averaged. Medians over the
    stretches of a run, then over runs, so each run counts once and one odd
    stretch or one long file does not decide.
    """
    per_run = []
    for segments in runs:
        per_segment = []
        for seg in segments:
            for cal in (len(seg) // 8, len(seg) // 4):
                if cal < 10 or len(seg) - cal < 2 * window:
                    continue
                r = smoothed(normalise(seg, cal) @ res, window)[cal:]
                per_segment.append((r**2).mean(axis=0))
        if per_segment:
            per_run.append(np.median(np.array(per_segment), axis=0))
    if not per_run:
        raise ModelError("too little data to learn per-signal spreads: need longer runs")
    return np.asarray(np.maximum(np.median(np.array(per_run), axis=0), 1e-6))


def chunks(rows: np.ndarray, size: int) -> list[np.ndarray]:
    """Cut a long normal run into stretches of ``size`` rows (the calibration length)."""
    return [rows[i : i + size] for i in range(0, len(rows) - size + 1, size)]


def fit(
    normal: list[np.ndarray], recipe: Recipe
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Learn mean, std, residual projection and per-signal spreads from normal runs."""
    pooled = np.vstack(normal)
    mean = pooled.mean(axis=0)
    std = std_floor(mean, pooled.std(axis=0))
    if recipe.calibrate_rows is None:
        res = fit_pca([(r - mean) / std for r in normal], recipe.components)
        var = np.concatenate(
            [(smoothed((r - mean) / std @ res, recipe.window) ** 2) for r in normal]
        )
        return mean, std, res, np.maximum(var.mean(axis=0), 1e-6)
    cal = recipe.calibrate_rows
    per_run = [chunks(run, cal) for run in normal]
    res = fit_pca(
        [np.vstack([normalise(c, cal) for c in run]) for run in per_run if run], recipe.components
    )
    return mean, std, res, drift_variance(per_run, res, recipe.window)
