"""The scorers' path on held-out engines: CSV -> ``edge-agent replay`` -> last ``rul`` per engine.

Trains the shipped recipe on the engines of four folds (``edge-agent train --kind
prognostic``), cuts each engine of the fifth at a random cycle (as NASA cut the test
engines), writes them as one replay CSV (one cycle per second, an hour between engines),
runs ``edge-agent replay`` with ``examples/cmapss-fd001.yaml`` (its model swapped for
the fold's), takes the ``rul`` of each engine's last row and scores it against the true
RUL capped at 125. Prints RMSE, NASA score per 100 engines and the largest difference
from the numpy model on the same windows.

Usage: ``python -m bench.rul_replay [--data train_FD001.txt] [--fold N]`` (about a minute
for the five folds; without ``--fold`` it writes its section of BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

import numpy as np

from bench.report import write_section
from bench.rul_validate import DATA, REPO
from edge_agent.cli.main import main as edge_agent
from edge_agent.train.rul_data import Engine, read_cmapss, write_replay_csv
from edge_agent.train.rul_eval import folds, nasa_score
from edge_agent.train.rul_fit import Recipe, fit, select
from edge_agent.train.rul_graph import export


def last_rul(path: Path, cycles: list[int]) -> np.ndarray:
    """The ``rul`` of each engine's last row of a replay output (engines in order)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    ends = np.cumsum(cycles) - 1
    return np.array([float(rows[i]["rul"]) for i in ends])


def run(data: Path, fold: int, folder: Path) -> dict[str, float]:
    """Train without ``fold``, replay its cut engines, score the last rows."""
    engines = read_cmapss(data)
    held = set(folds(len(engines), 5, 0)[fold].tolist())
    train = [e for i, e in enumerate(engines) if i not in held]
    model = fit(train, Recipe())
    onnx = folder / "rul.onnx"
    export(model, folder / "rul.fp32.onnx", onnx, name="fold")
    rng = np.random.default_rng(7)
    cut = [
        Engine(e.unit, e.values[: int(rng.integers(31, e.cycles))])
        for i, e in enumerate(engines)
        if i in held
    ]
    truth = np.array(
        [min(engines[i].cycles - c.cycles, 125) for i, c in zip(sorted(held), cut, strict=True)]
    )
    csv_path, out = folder / "cut.csv", folder / "rul.csv"
    write_replay_csv(cut, csv_path)
    config = folder / "cmapss.yaml"
    text = (REPO / "examples" / "cmapss-fd001.yaml").read_text()
    config.write_text(text.replace("../models/cmapss_fd001_rul.onnx", str(onnx)))
    argv = ["--log-level", "error", "replay", "-c", str(config), "--asset", "engine"]
    assert edge_agent([*argv, "--data", str(csv_path), "--out", str(out)]) == 0
    pred = last_rul(out, [c.cycles for c in cut])
    numpy_pred = model.predict(np.stack([select(c, Recipe().signals)[-30:] for c in cut]))
    return {
        "engines": len(cut),
        "rmse": round(float(np.sqrt(np.mean((pred - truth) ** 2))), 2),
        "nasa_per100": round(nasa_score(pred, truth) * 100 / len(cut), 1),
        "max_gap_vs_numpy": round(float(np.max(np.abs(pred - numpy_pred))), 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Run every fold (or one), print the figures as JSON, write the BENCHMARKS.md section."""
    parser = argparse.ArgumentParser(prog="python -m bench.rul_replay")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--fold", type=int, default=None, help="one fold only (no write)")
    args = parser.parse_args(argv)
    results = []
    for fold in range(5) if args.fold is None else [args.fold]:
        with tempfile.TemporaryDirectory() as tmp:
            results.append(run(args.data, fold, Path(tmp)))
        print(json.dumps(results[-1]), flush=True)
    if args.fold is None:
        write_section("rul_replay", "C-MAPSS FD001 through edge-agent replay", _body(results))
    return 0


def _body(results: list[dict[str, float]]) -> str:
    rows = [
        f"| {f} | {r['engines']} | {r['rmse']:.2f} | {r['nasa_per100']:.0f} "
        f"| {r['max_gap_vs_numpy']:.2f} |"
        for f, r in enumerate(results)
    ]
    rmse = np.array([r["rmse"] for r in results])
    return "\n".join(
        [
            "The path the scorers take, on held-out training engines: per fold (5 folds by "
            "engine, split seed 0) the recipe is trained on the other folds, each held-out "
            "engine is cut once at a random cycle (at least 31), the engines are written as "
            "one replay CSV and run through `edge-agent replay` with "
            "`examples/cmapss-fd001.yaml`; the `rul` of each engine's last row is scored "
            "against the true RUL capped at 125. Gap = largest |replay - numpy fp32| (int8, "
            "one window per call).",
            "",
            "| fold | engines | RMSE | NASA/100 | gap vs numpy |",
            "|---|---|---|---|---|",
            *rows,
            f"| mean +- sd | | **{rmse.mean():.2f} +- {rmse.std():.2f}** | | |",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
