"""Scoring RUL predictions the way the C-MAPSS test set is scored.

The test engines are cut off at some cycle before failure and the model is
judged at the cut only: RMSE and NASA's asymmetric score (late predictions
cost more) against the true RUL, capped. :func:`cut_points` makes the same
kind of cuts in held-out training engines, so validation mimics the test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from edge_agent.train.rul_data import Engine

# The shortest FD001 test engine has 31 cycles: cuts keep at least this many.
MIN_OBSERVED = 31


def cut_points(
    engines: Sequence[Engine], per_engine: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """``(engine index, observed cycles)`` pairs, uniform over each engine's life."""
    cuts = []
    for i, engine in enumerate(engines):
        high = engine.cycles - 1  # at least one cycle left, as in the test set
        for length in rng.integers(MIN_OBSERVED, high + 1, size=per_engine):
            cuts.append((i, int(length)))
    return cuts


def nasa_score(pred: np.ndarray, truth: np.ndarray) -> float:
    """Sum over engines of exp(-d/13)-1 (early) or exp(d/10)-1 (late), d = pred - truth."""
    d = pred - truth
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0), np.exp(d / 10.0)) - 1.0))


def evaluate(
    predict: Callable[[np.ndarray], np.ndarray],
    engines: Sequence[Engine],
    cuts: Sequence[tuple[int, int]],
    select: Callable[[Engine], np.ndarray],
    window: int,
    cap: float = 125.0,
) -> dict[str, float]:
    """RMSE, NASA score per 100 cuts and bias of ``predict`` at each cut.

    Args:
        predict: raw windows ``[b, window, n]`` -> RUL ``[b]``.
        engines: held-out engines, run to failure.
        cuts: from :func:`cut_points`.
        select: an engine's raw signal matrix ``[cycles, n]`` in model order.
        window: the model's window.
        cap: truth is capped here, as in the published results.
    """
    batch = np.stack([select(engines[i])[length - window : length] for i, length in cuts])
    truth = np.array([min(engines[i].cycles - length, cap) for i, length in cuts], float)
    pred = predict(batch)
    return {
        "rmse": float(np.sqrt(np.mean((pred - truth) ** 2))),
        "nasa_per100": nasa_score(pred, truth) * 100.0 / len(cuts),
        "bias": float(np.mean(pred - truth)),
    }


def folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    """Engine indices of ``k`` validation folds (a seeded shuffle, then k slices)."""
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(order, k)]
