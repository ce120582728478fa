"""The numpy engine against onnxruntime: per-call latency and process RSS.

For each shipped ONNX model, the bare engine call (``SmallGraph.run`` against
``InferenceSession.run``, one thread) and the wrapped call the detector makes
(``AnomalyModel.errors`` / ``PrognosticModel.predict``), one window and a batch
of 64; the ratio numpy / onnxruntime (below 1: numpy is faster). Then the RSS
(VmRSS) of a fresh process that loads and runs the SKAB model with each engine,
against a process that imports the same modules and loads no model.

Usage: ``python -m bench.model_engine [--quick] [--no-write]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.inference import timed
from bench.report import write_section
from edge_agent.detect.prognostic import load_prognostic, model_kind

REPO = Path(__file__).resolve().parent.parent
MODELS = {
    "skab_pump (int8)": REPO / "models" / "skab_pump.onnx",
    "skab_pump (fp32)": REPO / "models" / "skab_pump.fp32.onnx",
    "demo_pump (int8)": REPO / "edge_agent" / "sim" / "demo_pump.onnx",
    "cmapss_fd001_rul (int8, prognostic)": REPO / "models" / "cmapss_fd001_rul.onnx",
}
ENGINES = ("auto", "onnxruntime")


def calls(path: Path, engine: str, batch: int) -> tuple[Callable[[], object], Callable[[], object]]:
    """(bare engine call, wrapped call) on one random batch of windows."""
    from edge_agent.detect.model import load_model

    if model_kind(path) == "prognostic":
        prognostic = load_prognostic(path, engine=engine)
        session, output = prognostic._run, None  # the closure around the session
        wrapped: Callable[[], object] = lambda: prognostic.predict(x)  # noqa: E731
        card: Any = prognostic.card
    else:
        model = load_model(path, engine=engine)
        session, output = model._runner._session, "error"  # type: ignore[attr-defined]
        wrapped = lambda: model.errors(x)  # noqa: E731
        card = model.card
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, card.window, len(card.signals))).astype(np.float32)
    if output is None:
        return (lambda: session(x)), wrapped
    return (lambda: session.run([output], {"window": x})), wrapped


def latency(runs: int, rounds: int = 5) -> list[dict[str, Any]]:
    """p50 microseconds per call, both engines, batch 1 and 64, bare and wrapped.

    The engines take turns in ``rounds`` chunks, so a load change on the shared
    machine falls on both alike.
    """
    rows = []
    for label, path in MODELS.items():
        row: dict[str, Any] = {"model": label}
        for batch in (1, 64):
            n = max((runs if batch == 1 else runs // 10) // rounds, 20)
            pairs = {e: calls(path, e, batch) for e in ENGINES}
            samples: dict[str, list[np.ndarray]] = {}
            for _ in range(rounds):
                for engine, (bare, wrapped) in pairs.items():
                    samples.setdefault(f"{engine}/{batch}/bare", []).append(timed(bare, n))
                    samples.setdefault(f"{engine}/{batch}/wrapped", []).append(timed(wrapped, n))
            for key, chunks in samples.items():
                row[key] = float(np.median(np.concatenate(chunks)) * 1e6)
        rows.append(row)
        print(label, {k: round(v, 1) for k, v in row.items() if k != "model"}, flush=True)
    return rows


RSS_PROBE = """
import json, sys
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) / 1024
import numpy
from edge_agent.detect.model import load_model
before = rss()
if sys.argv[2] != 'none':
    m = load_model(sys.argv[1], engine=sys.argv[2])
    m.errors(numpy.zeros((1, m.card.window, len(m.card.signals)), numpy.float32))
print(json.dumps({"before": before, "after": rss(),
                  "onnxruntime": 'onnxruntime' in sys.modules}))
"""


def rss(engine: str, rounds: int) -> dict[str, Any]:
    """Median VmRSS (MB) before and after loading the SKAB model, fresh processes."""
    results = []
    for _ in range(rounds):
        out = subprocess.run(
            [sys.executable, "-c", RSS_PROBE, str(MODELS["skab_pump (int8)"]), engine],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "before": float(np.median([r["before"] for r in results])),
        "after": float(np.median([r["after"] for r in results])),
        "onnxruntime": results[0]["onnxruntime"],
    }


def main(argv: list[str] | None = None) -> int:
    """Measure and write the BENCHMARKS.md section."""
    parser = argparse.ArgumentParser(prog="python -m bench.model_engine")
    parser.add_argument("--quick", action="store_true", help="fewer runs (dev)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    runs = 500 if args.quick else 5000
    rows = latency(runs)
    memory = {e: rss(e, 3 if args.quick else 5) for e in ("none", *ENGINES)}
    print("rss", memory)
    body = _body(rows, memory, runs, load)
    print(body)
    if not args.no_write:
        write_section("model_engine", "Model engines: numpy against onnxruntime", body)
    return 0


def _body(
    rows: list[dict[str, Any]], memory: dict[str, dict[str, Any]], runs: int, load: float
) -> str:
    lines = [
        "| model | batch | bare numpy us | bare onnxruntime us | numpy / ort "
        "| wrapped numpy us | wrapped onnxruntime us | numpy / ort |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        for batch in (1, 64):
            n_bare, o_bare = row[f"auto/{batch}/bare"], row[f"onnxruntime/{batch}/bare"]
            n_wrap, o_wrap = row[f"auto/{batch}/wrapped"], row[f"onnxruntime/{batch}/wrapped"]
            lines.append(
                f"| {row['model']} | {batch} | {n_bare:.1f} | {o_bare:.1f} | {n_bare / o_bare:.2f} "
                f"| {n_wrap:.1f} | {o_wrap:.1f} | {n_wrap / o_wrap:.2f} |"
            )
    base = memory["none"]["after"]
    mem = [
        "| process | VmRSS MB | over no model | onnxruntime imported |",
        "|---|---:|---:|---|",
        f"| numpy + edge_agent.detect.model, no model | {base:.1f} | 0.0 | no |",
    ]
    for engine, label in (("auto", "numpy engine"), ("onnxruntime", "onnxruntime")):
        r = memory[engine]
        mem.append(
            f"| + load and run skab_pump.onnx, {label} | {r['after']:.1f} "
            f"| {r['after'] - base:+.1f} | {'yes' if r['onnxruntime'] else 'no'} |"
        )
    return f"""\
One thread; p50 of {runs} calls at batch 1 ({runs // 10} at batch 64) per engine, the two
engines taking turns in 5 chunks; load average {load:.2f} at the start (2 cores shared with
other work: the ratios are the figure to read).
"bare" is the engine's own call (`SmallGraph.run` / `InferenceSession.run`), "wrapped" the
call the detector makes (`AnomalyModel.errors` with its shape and NaN checks, or
`PrognosticModel.predict`). At batch 1 the numpy engine's outputs equal onnx's reference
evaluator bit for bit, and onnxruntime's where its kernels are exact
(tests/detect/test_onnx_small.py; its u8 x s8 sums saturate on x86-64 CPUs without VNNI).

{chr(10).join(lines)}

RSS of a fresh process (median of several), loading the int8 SKAB model:

{chr(10).join(mem)}
"""


if __name__ == "__main__":
    raise SystemExit(main())
