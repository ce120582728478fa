"""Offline training of the shipped anomaly models (``pip install 'plant-edge-agent[train]'``).

One command trains from CSV, exports ONNX, quantises to int8, checks the int8
scores against fp32 and writes the model card::

    edge-agent train --data normal.csv [--data more/] \\
        [--calibration-data runs/ --calibrate-rows 400] --window 15 --components 1 \\
        --out models/pump.onnx

writes ``pump.onnx`` (int8, the one to ship) and ``pump.fp32.onnx``, each with
its card embedded and beside it (``pump.card.json``, ``pump.fp32.card.json``);
``--tflite`` adds ``pump_int8.tflite`` and ``pump_fp32.tflite`` with their cards.
Each format gets its own threshold, computed on its own scores.

The shipped models were made with (SKAB data is GPL-3.0: read in place, never
copied into the repository; the model holds only fitted parameters)::

    edge-agent train --data ../shared/data/skab/anomaly-free \
        --calibration-data ../shared/data/skab/valve1 --calibrate-rows 400 \
        --window 20 --components 1 --factor 2.5 --tflite --out models/skab_pump.onnx
    edge-agent train --simulate 3600 --window 5 --components 1 \
        --quantile 0.999 --factor 1.5 \
        --signals motor_current,bearing_temp,vibration_rms,discharge_pressure,flow \
        --out edge_agent/sim/demo_pump.onnx    # then drop demo_pump.fp32.*

The model (see :mod:`edge_agent.train.graph`) smooths the normalised
window over time, takes the residual of a linear autoencoder (PCA) and squares
it in units of each signal's normal spread. Two ways to normalise:

* global (default): one mean/std from all training rows; the model works as
  shipped on the machine the data came from (the simulated plant).
* per run (``--calibrate-rows N``): every run is normalised by its own first N
  rows, as a site calibration would do (``edge-agent calibrate``, replay's
  ``--calibrate-rows``). The per-signal spreads ``v`` are then learned the same
  way: calibrate on the start of a normal stretch, measure how far each signal
  wanders after it. Slowly drifting signals (temperatures) get small weights,
  steady ones (flow) large ones. ``--calibration-data`` files contribute their
  first N rows only (the SKAB protocol: labels are never read).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.detect.card import ModelCard, write_sidecar
from edge_agent.detect.model import load_model, sliding_windows
from edge_agent.errors import ModelError
from edge_agent.train.data import Table, csv_files, read_table, sha256
from edge_agent.train.fit import Recipe, chunks, fit, normalise

log = logging.getLogger(__name__)

LABEL_COLUMNS = frozenset({"anomaly", "changepoint", "label", "labels"})


def load_runs(
    data: Sequence[Path],
    cal_data: Sequence[Path],
    signals: Sequence[str] | None,
    cal_rows: int | None,
) -> tuple[list[str], list[np.ndarray], list[dict[str, Any]]]:
    """Read the normal runs (whole files, and the first rows of calibration files)."""
    tables: list[tuple[Table, int | None]] = [(t, None) for t in map(read_table, csv_files(data))]
    if cal_data:
        if cal_rows is None:
            raise ModelError("--calibration-data needs --calibrate-rows")
        tables += [(t, cal_rows) for t in map(read_table, csv_files(cal_data))]
    if not tables:
        raise ModelError("no training data: give --data")
    names = list(signals) if signals else _signal_columns(tables[0][0])
    runs, provenance = [], []
    for table, limit in tables:
        rows = table.matrix(names)[:limit]
        rows = rows[np.isfinite(rows).all(axis=1)]  # gaps are not normal behaviour
        runs.append(rows)
        provenance.append(
            {"file": table.path.name, "rows": len(rows), "sha256": sha256(table.path)}
        )
    return names, runs, provenance


def _signal_columns(table: Table) -> list[str]:
    return [c for c in table.columns if c.lower() not in LABEL_COLUMNS]


def scores(
    model_path: Path, card: ModelCard, runs: list[np.ndarray], cal: int | None
) -> np.ndarray:
    """Scores of every window of the normal runs, as the agent would compute them."""
    model = load_model(model_path, card=card)
    out = []
    for run in runs:
        z = normalise(run, cal) if cal else model.normalise(run)
        if len(z) >= card.window:
            out.append(model.score(sliding_windows(z.astype(np.float32), card.window)))
    return np.concatenate(out)


def threshold(values: np.ndarray, recipe: Recipe) -> float:
    """The calibration rule: ``factor`` times the ``quantile`` of normal scores."""
    return float(np.quantile(values, recipe.quantile) * recipe.factor)


def compare(fp32: np.ndarray, int8: np.ndarray, t32: float, t8: float) -> dict[str, float]:
    """How far the int8 scores are from fp32 on the same windows."""
    rel = np.abs(int8 - fp32) / np.maximum(np.abs(fp32), 1e-6)
    return {
        "windows": int(fp32.size),
        "score_corr": round(float(np.corrcoef(fp32, int8)[0, 1]), 6),
        "score_rel_err_median": round(float(np.median(rel)), 5),
        "score_rel_err_p99": round(float(np.quantile(rel, 0.99)), 5),
        "mean_score_fp32": round(float(fp32.mean()), 6),
        "mean_score_int8": round(float(int8.mean()), 6),
        "alarm_disagreement": round(float(np.mean((fp32 > t32) != (int8 > t8))), 6),
    }


def train(
    data: Sequence[Path],
    out: Path,
    recipe: Recipe,
    *,
    cal_data: Sequence[Path] = (),
    signals: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    tflite: bool = False,
) -> ModelCard:
    """Train, export fp32 and int8 ONNX, compare them, write the card; returns the int8 card.

    Args:
        data: CSV files or folders of normal runs (every row is used).
        out: path of the int8 model; ``<stem>.fp32.onnx`` and ``<stem>.card.json`` go beside it.
        recipe: window, components, calibration rule.
        cal_data: runs of which only the first ``recipe.calibrate_rows`` rows are used.
        signals: CSV columns to use (default: all but time and label columns).
        names: signal names for the card, in the same order (default: the column names).
        tflite: also write ``<stem>_int8.tflite`` and ``<stem>_fp32.tflite`` (needs the
            ``tflite`` extra), each with its own card and recalibrated threshold.
    """
    from edge_agent.train import graph as train_graph

    columns, runs, provenance = load_runs(data, cal_data, signals, recipe.calibrate_rows)
    card_signals = tuple(names) if names else tuple(columns)
    if len(card_signals) != len(columns):
        raise ModelError(f"--names has {len(card_signals)} names for {len(columns)} signals")
    mean, std, res, var = fit(runs, recipe)
    card = ModelCard(
        name=recipe.name,
        signals=card_signals,
        window=recipe.window,
        step=recipe.step,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        threshold=1.0,
        calibration={"quantile": recipe.quantile, "factor": recipe.factor},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fp32_path = out.with_name(out.stem + ".fp32.onnx")
    fp32_path.write_bytes(train_graph.build_model(card, res, 1.0 / var))
    train_graph.quantise_int8(fp32_path, out)
    paths = {"fp32": fp32_path, "int8": out}
    if tflite:
        from edge_agent.train.tflite import export

        for int8 in (True, False):
            kind = "tflite int8" if int8 else "tflite fp32"
            target = out.with_name(f"{out.stem}_{kind.split()[1]}.tflite")
            paths[kind] = export(fp32_path, target, card, int8)
    info = {
        "trained_on": provenance,
        "normalisation": f"per run, first {recipe.calibrate_rows} rows"
        if recipe.calibrate_rows
        else "global",
        "components": recipe.components,
    }
    cards = finish_cards(card, paths, runs, recipe, info)
    return cards["int8"]


def finish_cards(
    card: ModelCard,
    paths: dict[str, Path],
    runs: list[np.ndarray],
    recipe: Recipe,
    info: dict[str, Any],
) -> dict[str, ModelCard]:
    """Threshold each exported model on its own scores, compare with fp32, write cards."""
    from edge_agent.train import graph as train_graph

    cal = recipe.calibrate_rows
    eval_runs = [c for r in runs for c in chunks(r, cal)] if cal else runs
    s32 = scores(paths["fp32"], card, eval_runs, cal)
    t32 = threshold(s32, recipe)
    cards = {}
    for kind, path in paths.items():
        got = scores(path, card, eval_runs, cal) if kind != "fp32" else s32
        thr = threshold(got, recipe)
        stats: dict[str, Any] = {
            "format": kind,
            "size_bytes": path.stat().st_size,  # ONNX: before this card is embedded
            "vs_fp32": compare(s32, got, t32, thr),
        }
        if path.suffix == ".onnx":
            stats["latency_batch1"] = train_graph.latency_us(path, card.window, len(card.signals))
        cards[kind] = card.replace(threshold=thr, info={**info, **stats})
        if path.suffix == ".onnx":
            train_graph.set_card(path, cards[kind])
        write_sidecar(path, cards[kind])
    return cards
