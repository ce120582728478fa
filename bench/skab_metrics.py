"""SKAB's scores: outlier F1/FAR/MAR and its NAB changepoint variant.

Written from the protocol in ``shared/data/skab/SOURCE.md`` (SKAB leaderboard):
TP/FP/FN/TN are summed over all test rows of all files before F1, FAR and MAR;
predicted changepoints are the alarm's on/off edges, each true changepoint owns
``[t, t + 60 s]`` and the first prediction inside scores on a tanh ramp.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

PROFILES = {
    "standard": (1.0, -0.11, -1.0),
    "low_fp": (1.0, -0.22, -1.0),
    "low_fn": (1.0, -0.11, -2.0),
}
WINDOW_S = 60.0


def outlier_metrics(preds: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> dict[str, float]:
    """F1, FAR % and MAR % with counts summed over all files first."""
    tp = fp = fn = tn = 0
    for p, y in zip(preds, labels, strict=True):
        p, y = p.astype(bool), y.astype(bool)
        tp += int(np.sum(p & y))
        fp += int(np.sum(p & ~y))
        fn += int(np.sum(~p & y))
        tn += int(np.sum(~p & ~y))
    return {
        "f1": tp / (tp + (fp + fn) / 2) if tp else 0.0,
        "far": 100.0 * fp / (fp + tn) if fp + tn else 0.0,
        "mar": 100.0 * fn / (fn + tp) if fn + tp else 0.0,
    }


def edges(alarm: np.ndarray) -> np.ndarray:
    """Indices where the alarm switches on or off (the row before the test part counts as 0)."""
    a = alarm.astype(np.int8)
    return np.nonzero(np.diff(np.concatenate([[0], a])))[0]


def _file_score(
    ts: np.ndarray, alarm: np.ndarray, changepoints: np.ndarray, profile: tuple[float, float, float]
) -> tuple[float, int]:
    a_tp, a_fp, a_fn = profile
    windows = [(ts[i], ts[i] + WINDOW_S) for i in np.nonzero(changepoints)[0]]
    pred_ts = ts[edges(alarm)]
    score = 0.0
    inside = np.zeros(pred_ts.size, dtype=bool)
    for start, end in windows:
        hits = np.nonzero((pred_ts >= start) & (pred_ts <= end))[0]
        inside[hits] = True
        if hits.size == 0:
            score += a_fn
            continue
        x = -math.pi / 2 + math.pi * (pred_ts[hits[0]] - start) / (end - start)
        score += (a_tp - a_fp) / 2 * (1 - math.tanh(x) / math.tanh(math.pi / 2)) + a_fp
    score += a_fp * int(np.sum(~inside))
    return score, len(windows)


def nab_scores(
    runs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> dict[str, float]:
    """SKAB's NAB changepoint score per profile, 0 = null detector, 100 = perfect.

    Args:
        runs: per file ``(ts, alarm, changepoint)`` over the test rows.
    """
    out = {}
    for name, profile in PROFILES.items():
        total, n_windows = 0.0, 0
        for ts, alarm, cps in runs:
            s, w = _file_score(ts, alarm, cps, profile)
            total += s
            n_windows += w
        null, perfect = n_windows * profile[2], n_windows * profile[0]
        out[name] = 100.0 * (total - null) / (perfect - null)
    return out
