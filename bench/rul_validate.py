"""Engine-wise k-fold validation of the RUL recipe on C-MAPSS training engines.

Each fold trains on the other folds' engines and scores its own engines cut at
random cycles (as the test set is), truth capped at 125. Prints one row per
fold and the mean and spread; ``--int8`` also exports each fold's model to
ONNX, quantises it and scores the int8 model through onnxruntime.

    OMP_NUM_THREADS=1 nice -n 15 python -m bench.rul_validate --int8   (about a minute)

writes its table into BENCHMARKS.md (with ``--int8``, all folds); ``--set epochs=40``
changes the recipe for exploration (then pass ``--no-write``).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.train.rul_data import Engine, read_cmapss
from edge_agent.train.rul_eval import cut_points, evaluate, folds
from edge_agent.train.rul_fit import Recipe, RulModel, fit, select

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "cmapss" / "train_FD001.txt"
SHIPPED = REPO / "models" / "cmapss_fd001_rul.onnx"


def parse_recipe(overrides: Sequence[str]) -> Recipe:
    """``Recipe()`` with ``key=python-literal`` overrides (``convs=((5,16),)``)."""
    changes: dict[str, Any] = {}
    for item in overrides:
        key, _, text = item.partition("=")
        changes[key] = ast.literal_eval(text)
    return dataclasses.replace(Recipe(), **changes)


def onnx_predictors(model: RulModel, folder: Path) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Export ``model`` (fp32 and int8); predictors of both files in the engine the agent
    runs them in (``engine: auto``: the numpy engine, exact by the ONNX definition on every
    CPU; onnxruntime's u8 x s8 kernels saturate on x86-64 without VNNI)."""
    from edge_agent.train.rul_graph import OnnxRul, export

    fp32, int8 = folder / "rul.fp32.onnx", folder / "rul.int8.onnx"
    export(model, fp32, int8)
    one = OnnxRul(int8)

    def int8_single(x: np.ndarray) -> np.ndarray:
        # as the agent runs it: one window per call (dynamic int8 ranges are per call)
        return np.array([one.predict(w[np.newaxis])[0] for w in x])

    return {"onnx32": OnnxRul(fp32).predict, "int8": int8_single}


def run_fold(
    engines: list[Engine], val: np.ndarray, recipe: Recipe, cuts_per: int, int8: bool
) -> dict[str, float]:
    """Train without the ``val`` engines, score them at random cuts (fp32, optionally int8)."""
    held = [engines[i] for i in val]
    train = [e for i, e in enumerate(engines) if i not in set(val.tolist())]
    start = time.process_time()
    model = fit(train, recipe)
    row: dict[str, float] = {"train_cpu_s": time.process_time() - start}
    cuts = cut_points(held, cuts_per, np.random.default_rng(12345 + int(val[0])))

    def pick(e: Engine) -> np.ndarray:
        return select(e, recipe.signals)

    row.update(evaluate(model.predict, held, cuts, pick, recipe.window))
    if int8:
        with tempfile.TemporaryDirectory() as tmp:
            for kind, predict in onnx_predictors(model, Path(tmp)).items():
                q = evaluate(predict, held, cuts, pick, recipe.window)
                row.update({f"{kind}_{k}": v for k, v in q.items() if k != "bias"})
    return row


def summary(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean and (population) std of every column over folds."""
    out = {}
    for key in rows[0]:
        values = np.array([r[key] for r in rows])
        out[f"{key}_mean"] = round(float(values.mean()), 3)
        out[f"{key}_std"] = round(float(values.std()), 3)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--cuts", type=int, default=10, help="random cuts per held-out engine")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--only", type=int, default=None, help="run one fold (exploration)")
    parser.add_argument("--int8", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--no-write", dest="write", action="store_false", help="do not update BENCHMARKS.md"
    )
    args = parser.parse_args(argv)
    recipe = parse_recipe(args.set)
    engines = read_cmapss(args.data)
    print(json.dumps(dataclasses.asdict(recipe)), flush=True)
    rows = []
    for f, val in enumerate(folds(len(engines), args.folds, args.split_seed)):
        if args.only is not None and f != args.only:
            continue
        row = run_fold(engines, val, recipe, args.cuts, args.int8)
        rows.append(row)
        print(f"fold {f}: " + "  ".join(f"{k}={v:.2f}" for k, v in row.items()), flush=True)
    print("summary: " + json.dumps(summary(rows)), flush=True)
    if args.write and args.int8 and args.only is None:
        from bench.report import write_section

        body = report(rows, args, recipe)
        write_section("rul_validate", "C-MAPSS FD001 remaining useful life: k-fold by engine", body)
    return 0


def report(rows: list[dict[str, float]], args: argparse.Namespace, recipe: Recipe) -> str:
    """The BENCHMARKS.md section: the per-fold table, then the shipped model's size and speed."""
    lines = [
        f"Recipe: {len(recipe.signals)} sensors, window {recipe.window}, level + slope per "
        f"sensor, {recipe.members} x {recipe.hidden}-unit ReLU nets averaged, RUL cap "
        f"{recipe.cap:g}. {args.folds} folds by engine (split seed {args.split_seed}); each "
        f"held-out engine is cut at {args.cuts} random cycles (observed length uniform in "
        "[31, life - 1], as the test set's engines are cut) and scored at the cut against the "
        "true RUL capped at 125. NASA score per 100 cuts (the 100-engine test set's scale). "
        "int8 = the exported int8 ONNX through onnxruntime, one window per call as the agent "
        "runs it.",
        "",
        "| fold | RMSE fp32 | RMSE int8 | NASA/100 fp32 | NASA/100 int8 | bias fp32 |",
        "|---|---|---|---|---|---|",
    ]
    for f, row in enumerate(rows):
        lines.append(
            f"| {f} | {row['rmse']:.2f} | {row['int8_rmse']:.2f} | {row['nasa_per100']:.0f} "
            f"| {row['int8_nasa_per100']:.0f} | {row['bias']:+.1f} |"
        )
    s = summary(rows)
    lines.append(
        f"| mean +- sd | **{s['rmse_mean']:.2f} +- {s['rmse_std']:.2f}** "
        f"| **{s['int8_rmse_mean']:.2f} +- {s['int8_rmse_std']:.2f}** "
        f"| {s['nasa_per100_mean']:.0f} | {s['int8_nasa_per100_mean']:.0f} "
        f"| {s['bias_mean']:+.1f} |"
    )
    lines += ["", *shipped_lines()]
    return "\n".join(lines)


def shipped_lines() -> list[str]:
    """Size and single-window latency of the shipped model files (one thread)."""
    from edge_agent.train.rul_graph import OnnxRul

    out = ["| shipped file | bytes | p50 us | p99 us |", "|---|---|---|---|"]
    shipped = OnnxRul(SHIPPED)
    timing = shipped.latency_us(2000)
    out.append(f"| {SHIPPED.name} (int8, {shipped.engine} engine) | {SHIPPED.stat().st_size:,} "
               f"| {timing['p50_us']} "
               f"| {timing['p99_us']} |")  # fmt: skip
    tflite = SHIPPED.with_name(SHIPPED.stem + "_int8.tflite")
    if tflite.is_file():
        out.append(f"| {tflite.name} | {tflite.stat().st_size:,} | {tflite_p50(tflite)} | |")
    return out


def tflite_p50(path: Path) -> str:
    """Median single-window latency of a TFLite model (us), or "-" without LiteRT."""
    try:
        from edge_agent.train.rul_tflite import TfliteRul
    except ImportError:
        return "-"
    model = TfliteRul(path)
    x = np.zeros((1, 30, 14), np.float32)
    times = []
    for _ in range(2000):
        start = time.perf_counter()
        model.predict(x)
        times.append(time.perf_counter() - start)
    return f"{np.median(times[200:]) * 1e6:.1f}"


if __name__ == "__main__":
    sys.exit(main())
