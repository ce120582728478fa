"""CSV reading for training and SKAB's scoring rules."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench.skab_metrics import edges, nab_scores, outlier_metrics
from edge_agent.errors import ModelError
from edge_agent.train.data import csv_files, read_table


def test_semicolon_csv_with_iso_times(tmp_path: Path) -> None:
    path = tmp_path / "run.csv"
    path.write_text(
        "datetime;Current;Volume Flow RateRMS;anomaly\r\n"
        "2020-03-09 10:14:33;1.5;32.0;0.0\r\n"
        "2020-03-09 10:14:35;1.25;x;1.0\r\n"
    )
    table = read_table(path)
    assert table.ts[1] - table.ts[0] == 2.0
    m = table.matrix(["Volume Flow RateRMS", "Current"])
    assert m[0].tolist() == [32.0, 1.5]
    assert math.isnan(m[1, 0])


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "run.csv"
    path.write_text("t,a\n0,1\n")
    with pytest.raises(ModelError, match=r"no column \['b'\]"):
        read_table(path).matrix(["b"])


def test_ragged_rows_and_bad_times(tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("t,a\n0,1,2\n")
    with pytest.raises(ModelError, match="different number of fields"):
        read_table(ragged)
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,a\nyesterday,1\n")
    with pytest.raises(ModelError, match="bad time stamp"):
        read_table(bad)


def test_folders_expand_in_natural_order(tmp_path: Path) -> None:
    for name in ("10.csv", "2.csv", "1.csv"):
        (tmp_path / name).write_text("t,a\n0,1\n")
    assert [p.name for p in csv_files([tmp_path])] == ["1.csv", "2.csv", "10.csv"]
    with pytest.raises(ModelError, match="not found"):
        csv_files([tmp_path / "nope"])


def test_outlier_metrics_sum_counts_over_files() -> None:
    preds = [np.array([1, 1, 0, 0]), np.array([0, 1])]
    labels = [np.array([1, 0, 1, 0]), np.array([0, 1])]
    m = outlier_metrics(preds, labels)
    # TP 2, FP 1, FN 1, TN 2
    assert m["f1"] == pytest.approx(2 / (2 + 1))
    assert m["far"] == pytest.approx(100 / 3)
    assert m["mar"] == pytest.approx(100 / 3)


def test_edges_are_on_and_off_switches() -> None:
    assert edges(np.array([1, 1, 0, 0, 1])).tolist() == [0, 2, 4]


def _nab(alarm: np.ndarray) -> dict[str, float]:
    ts = np.arange(alarm.size, dtype=float)
    cps = np.zeros(alarm.size, dtype=bool)
    cps[[100, 200]] = True
    return nab_scores([(ts, alarm, cps)])


def test_nab_perfect_null_and_late() -> None:
    perfect = np.zeros(400, dtype=bool)
    perfect[100:200] = True  # switches on at 100 and off at 200: both changepoints
    assert _nab(perfect)["standard"] == pytest.approx(100.0)
    assert _nab(np.zeros(400, dtype=bool))["standard"] == pytest.approx(0.0)
    late = np.zeros(400, dtype=bool)
    late[130:230] = True  # half-way into each 60 s window: (A_TP + A_FP) / 2 each
    assert 0 < _nab(late)["standard"] < _nab(perfect)["standard"]
    noisy = perfect.copy()
    noisy[300] = True  # one more on/off pair outside every window: two false positives
    assert _nab(noisy)["low_fp"] < _nab(noisy)["standard"] < 100.0


def test_nab_scoring_follows_the_sweeper() -> None:
    from bench.nab_metrics import PROFILES, normalised, probation, raw_score

    n = 1000
    assert probation(n) == 150
    assert probation(100_000) == 750
    windows = [(400, 499)]
    standard = PROFILES["standard"]
    early = np.zeros(n, dtype=bool)
    early[400] = True
    assert normalised([raw_score(early, windows, standard)], 1, standard) == pytest.approx(100.0)
    none = np.zeros(n, dtype=bool)
    assert normalised([raw_score(none, windows, standard)], 1, standard) == pytest.approx(0.0)
    late = np.zeros(n, dtype=bool)
    late[490] = True
    assert 0 < raw_score(late, windows, standard) < raw_score(early, windows, standard)
    before = early.copy()
    before[200] = True  # a false positive before any window costs the full A_FP
    assert raw_score(before, windows, standard) == pytest.approx(1.0 - 0.11)
    right_after = early.copy()
    right_after[500] = True  # just past the window: almost free
    assert raw_score(right_after, windows, standard) > 1.0 - 0.01
    in_probation = none.copy()
    in_probation[10] = True  # probationary rows are not scored
    assert raw_score(in_probation, windows, standard) == pytest.approx(-1.0)
