"""NAB's scoring rules (Numenta Anomaly Benchmark), written from ``nab/sweeper.py``.

Per ``shared/data/nab/SOURCE.md``: the first ``min(floor(15 % of rows), 750)``
rows are probationary and not scored. A row whose anomaly score is at or above
the threshold is a detection. Inside a window only the best (earliest)
detection counts, ``A_TP * s(y) / s(-1)`` with ``s(y) = 2 / (1 + e^(5y)) - 1``
and ``y = -(right - i + 1) / width``; a window without one costs ``-A_FN``. A
detection outside every window costs ``A_FP * s(y)`` with ``y`` the distance
past the previous window's right edge over (its width - 1), or ``-A_FP``
before the first window. Normalised: ``100 (S - S_null) / (S_perfect - S_null)``
with ``S_null = -A_FN * windows`` and ``S_perfect = A_TP * windows``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

PROFILES = {
    "standard": (1.0, 0.11, 1.0),
    "reward_low_FP_rate": (1.0, 0.22, 1.0),
    "reward_low_FN_rate": (1.0, 0.11, 2.0),
}


def scaled_sigmoid(y: float) -> float:
    """NAB's ramp: about 1 at the left edge of a window, 0 at its right edge, -1 far after."""
    if y >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def probation(rows: int) -> int:
    """Rows at the start that are not scored."""
    return int(min(math.floor(0.15 * rows), 0.15 * 5000))


def window_index(n: int, windows: Sequence[tuple[int, int]]) -> np.ndarray:
    """Per row: the index of the window containing it, or -1."""
    idx = np.full(n, -1)
    for k, (a, b) in enumerate(windows):
        idx[a : b + 1] = k
    return idx


def raw_score(
    detections: np.ndarray, windows: Sequence[tuple[int, int]], profile: tuple[float, float, float]
) -> float:
    """Unnormalised NAB score ``S`` of one file.

    Args:
        detections: bool per row (at or above threshold).
        windows: (first row, last row) of each labelled window, in time order.
        profile: (A_TP, A_FP, A_FN).
    """
    a_tp, a_fp, a_fn = profile
    n = detections.size
    start = probation(n)
    inside = window_index(n, windows)
    best = [-a_fn] * len(windows)
    fp_total = 0.0
    max_tp = scaled_sigmoid(-1.0)
    prev: tuple[int, int] | None = None
    for i in range(n):
        k = int(inside[i])
        if k >= 0:
            a, b = windows[k]
            if detections[i] and i >= start:
                y = -(b - i + 1) / float(b - a + 1)
                best[k] = max(best[k], scaled_sigmoid(y) * a_tp / max_tp)
            if i == b:
                prev = (a, b)
            continue
        if detections[i] and i >= start:
            y = 3.0 if prev is None else abs(prev[1] - i) / float(prev[1] - prev[0])
            fp_total += scaled_sigmoid(y) * a_fp
    return sum(best) + fp_total


def normalised(
    scores: Sequence[float], n_windows: int, profile: tuple[float, float, float]
) -> float:
    """100 x (S - S_null) / (S_perfect - S_null) over files pooled."""
    a_tp, _, a_fn = profile
    null, perfect = -a_fn * n_windows, a_tp * n_windows
    return 100.0 * (sum(scores) - null) / (perfect - null)
