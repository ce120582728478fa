"""The SKAB recipe selection: folds by file, the agent's lifecycle on cached scores, the rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.skab_cv import DEBOUNCES, MAX_FAR, Choice, Grid, Scores, choose, folds, lifecycle
from bench.skab_eval import CAL_ROWS, Run

NONE, DEFAULT = DEBOUNCES[0], DEBOUNCES[2]


def test_folds_hold_every_file_once() -> None:
    for n_folds in (16, 8, 2):
        parts = folds(16, n_folds)
        assert len(parts) == n_folds
        assert sorted(i for p in parts for i in p) == list(range(16))
    assert folds(16, 8)[3] == [6, 7]


def test_lifecycle_without_debounce_follows_the_threshold() -> None:
    score = np.full(CAL_ROWS + 30, 0.1)
    score[CAL_ROWS + 10 : CAL_ROWS + 20] = 2.0
    alarm = lifecycle(score, np.arange(score.size, dtype=float), 1.0, NONE)
    assert np.flatnonzero(alarm).tolist() == list(range(CAL_ROWS + 10, CAL_ROWS + 20))


def test_default_debounce_raises_on_the_third_and_clears_after_five_below() -> None:
    score = np.full(CAL_ROWS + 40, 0.1)
    score[CAL_ROWS + 10 : CAL_ROWS + 20] = 2.0
    score[CAL_ROWS + 20 : CAL_ROWS + 23] = 0.9  # in the band: neither raise nor clear
    alarm = lifecycle(score, np.arange(score.size, dtype=float), 1.0, DEFAULT)
    on = np.flatnonzero(alarm)
    assert on[0] == CAL_ROWS + 12  # 3 of 5 above
    assert on[-1] == CAL_ROWS + 26  # the 5th row below 0.8x clears it


def _run(anomaly: np.ndarray) -> Run:
    n = anomaly.size
    return Run(
        "x.csv", Path("x.csv"), np.arange(n, dtype=float), np.zeros((n, 1)), anomaly, anomaly
    )


def _scores(test: list[float]) -> np.ndarray:
    score = np.full(CAL_ROWS + len(test), np.nan)
    score[20:CAL_ROWS] = 0.5  # calibration maximum 0.5: factor f puts the threshold at f/2
    score[CAL_ROWS:] = test
    return score


def _grid(test: list[float], anomalous_from: int) -> Grid:
    anomaly = np.zeros(CAL_ROWS + len(test), dtype=bool)
    anomaly[CAL_ROWS + anomalous_from :] = True
    same = Scores([_scores(test)] * 2, [0.5, 0.5])
    return Grid({(20, 1): same, (10, 0): same}, [_run(anomaly), _run(anomaly)])


def test_choice_respects_the_false_alarm_budget() -> None:
    # 80 normal rows (20 of them at 0.9), 100 anomalous (50 at 1.2, 50 at 0.9).
    grid = _grid([0.1] * 60 + [0.9] * 20 + [1.2] * 50 + [0.9] * 50, 80)
    # Factor 1.5 (threshold 0.75) catches every anomalous row but 25 % of normal ones alarm.
    low = grid.counts(Choice(10, 0, 1.5, NONE), [0, 1])
    assert low["far"] > MAX_FAR
    best, m = choose(grid, [0, 1])
    assert best.factor > 1.5
    assert m["far"] <= MAX_FAR


def test_ties_go_to_the_simpler_recipe() -> None:
    grid = _grid([0.1] * 80 + [3.0] * 100, 80)
    best, m = choose(grid, [0, 1])
    assert m["f1"] == 1.0
    # Every factor catches every row: fewest components, shortest window, no debounce,
    # largest factor.
    assert best == Choice(10, 0, 4.0, NONE)
