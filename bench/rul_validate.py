"""Engine-wise k-fold validation of the RUL recipe on C-MAPSS training engines.

Each fold trains on the other folds' engines and scores its own engines cut at
random cycles (as the test set is), truth capped at 125. Prints one row per
fold and the mean and spread; ``--int8`` also exports each fold's model to
ONNX, quantises it and scores the int8 model through onnxruntime.

    OMP_NUM_THREADS=1 nice -n 15 python validate.py \
        --data /work/shared/data/cmapss/train_FD001.txt --set epochs=40 --set members=1
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

DATA = Path("/work/shared/data/cmapss/train_FD001.txt")


def parse_recipe(overrides: Sequence[str]) -> Recipe:
    """``Recipe()`` with ``key=python-literal`` overrides (``convs=((5,16),)``)."""
    changes: dict[str, Any] = {}
    for item in overrides:
        key, _, text = item.partition("=")
        changes[key] = ast.literal_eval(text)
    return dataclasses.replace(Recipe(), **changes)


def onnx_predictors(model: RulModel, folder: Path) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Export ``model`` (fp32 and int8) and return onnxruntime predictors of both files."""
    from edge_agent.train.rul_graph import OnnxRul, export

    fp32, int8 = folder / "rul.fp32.onnx", folder / "rul.int8.onnx"
    export(model, fp32, int8)
    return {"onnx32": OnnxRul(fp32).predict, "int8": OnnxRul(int8).predict}


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
