"""Train a prognostic (remaining useful life) model and write it as int8 ONNX (and TFLite).

``edge-agent train --kind prognostic --data train_FD001.txt --out models/cmapss_fd001_rul.onnx``

Reads NASA's C-MAPSS text file or the agent's replay CSV (``.csv``, see
:mod:`edge_agent.train.rul_data`); both give the same engines and the same model.
Writes the int8 model (card embedded, ``kind: prognostic``), optionally its
fp32 twin and the TFLite pair (card beside each), and reports size, latency and
the largest int8 - fp32 difference on the windows of the first five engines.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.errors import ModelError
from edge_agent.train.rul_data import Engine, read_cmapss, read_replay_csv
from edge_agent.train.rul_fit import Recipe, RulModel, fit, windows
from edge_agent.train.rul_graph import OnnxRul, export


def read_engines(path: Path) -> list[Engine]:
    """Engines of a C-MAPSS text file or of a replay CSV (by suffix)."""
    return read_replay_csv(path) if path.suffix.lower() == ".csv" else read_cmapss(path)


def train_prognostic(
    data: Path, out: Path, recipe: Recipe, *, name: str | None = None, tflite: bool = False,
    keep_fp32: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Train on every engine of ``data`` and write ``out`` (int8 ONNX, card embedded).

    Returns:
        A report: training time, file sizes, latency, largest int8 - fp32 gap.

    Raises:
        ModelError: unreadable data, or no engine as long as the window.
    """
    engines = read_engines(data)
    if not any(e.cycles >= recipe.window for e in engines):
        raise ModelError(f"{data}: no engine has {recipe.window} cycles (the window)")
    start = time.process_time()
    model = fit(engines, recipe)
    train_s = round(time.process_time() - start, 1)
    info = {
        "data": data.name,
        "data_sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
        "engines": len(engines),
        "recipe": dataclasses.asdict(recipe),
        "train_cpu_s": train_s,
    }
    card_name = name or out.stem
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = out.with_name(out.stem + ".fp32.onnx") if keep_fp32 else Path(tmp) / "fp32.onnx"
        export(model, fp32, out, info, name=card_name)
        report = _report(model, engines, fp32, out, train_s)
    if tflite:
        report.update(_tflite(model, out, info, card_name))
    return report


def _report(
    model: RulModel, engines: list[Engine], fp32: Path, int8: Path, train_s: float
) -> dict[str, Any]:
    r = model.recipe
    x, _ = windows(engines[:5], r.signals, r.window, r.cap)
    gap = float(np.max(np.abs(OnnxRul(int8).predict(x) - model.predict(x))))
    report: dict[str, Any] = {"train_cpu_s": train_s, "max_int8_gap": round(gap, 2)}
    for label, path in (("fp32", fp32), ("int8", int8)):
        report[label] = {"bytes": path.stat().st_size, **OnnxRul(path).latency_us()}
    return report


def _tflite(model: RulModel, out: Path, info: dict[str, Any], name: str) -> dict[str, Any]:
    from edge_agent.train.rul_tflite import export as export_tflite

    sizes = {}
    for int8, suffix in ((True, "_int8"), (False, "_fp32")):
        path = export_tflite(model, out.with_name(out.stem + suffix + ".tflite"), int8, info, name)
        sizes[path.name] = path.stat().st_size
    return {"tflite": sizes}


def parser() -> argparse.ArgumentParser:
    """The flags of ``edge-agent train --kind prognostic``."""
    p = argparse.ArgumentParser(
        prog="edge-agent train --kind prognostic", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--data", type=Path, required=True, help="train_FD00x.txt or a replay CSV")
    p.add_argument("--out", type=Path, required=True, help="int8 model path (.onnx)")
    p.add_argument("--name", default=None, help="model name in the card (default: file stem)")
    p.add_argument("--signals", default=None, help="comma-separated sensors (default: FD001's 14)")
    p.add_argument("--window", type=int, default=30, help="cycles per window (default 30)")
    p.add_argument("--cap", type=float, default=125.0, help="RUL cap in cycles (default 125)")
    p.add_argument("--epochs", type=int, default=120, help="training epochs (default 120)")
    p.add_argument("--members", type=int, default=5, help="ensemble members (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tflite", action="store_true", help="also write <stem>_int8/_fp32.tflite")
    p.add_argument("--fp32", action="store_true", help="also keep <stem>.fp32.onnx")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Train from the flags; prints the report as JSON. Returns the exit code."""
    args = parser().parse_args(argv)
    recipe = Recipe(
        window=args.window, cap=args.cap, epochs=args.epochs, members=args.members, seed=args.seed
    )
    if args.signals:
        recipe = dataclasses.replace(recipe, signals=tuple(args.signals.split(",")))
    report = train_prognostic(
        args.data, args.out, recipe, name=args.name, tflite=args.tflite, keep_fp32=args.fp32
    )
    print(f"wrote {args.out} (prognostic, int8)")
    print(json.dumps(report, indent=2))
    return 0
