"""Per-window inference cost of the shipped models, int8 against fp32.

For each model: file size, latency of one window (p50/p99, one thread, batch
1) and windows/s at batch 1 and 64, through ``AnomalyModel.errors`` (our
checks included) and through a bare ``session.run`` (the raw loop the ratio is
taken against). A reference dense autoencoder (8 signals x 32 steps, about 35k
parameters, random weights) shows where int8 starts to matter. RSS added by
importing onnxruntime and loading a model is measured in a fresh process.

TFLite: not measured. There is no cheap ONNX -> TFLite path without TensorFlow
(shared/FACTS.md), and the runtime (ai-edge-litert) is an optional extra; the
``.tflite`` loader in ``detect/model.py`` is tested for its error paths only.

ONNX rows run in onnxruntime (``engine="onnxruntime"``); the numpy engine that
runs the shipped models by default is compared with it in ``bench.model_engine``.

Usage: ``python -m bench.inference [--quick] [--no-write]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import write_section
from edge_agent.detect.card import ModelCard
from edge_agent.detect.model import AnomalyModel, load_model

REPO = Path(__file__).resolve().parent.parent


def timed(fn: Callable[[], object], runs: int) -> np.ndarray:
    """Seconds per call, warm-up excluded."""
    for _ in range(max(runs // 10, 5)):
        fn()
    out = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - start
    return out


def measure(model: AnomalyModel, runs: int) -> dict[str, float]:
    """Latency and throughput of one model, wrapper and raw session."""
    card = model.card
    rng = np.random.default_rng(0)
    one = rng.normal(size=(1, card.window, len(card.signals))).astype(np.float32)
    batch = rng.normal(size=(64, card.window, len(card.signals))).astype(np.float32)
    wrapped = timed(lambda: model.errors(one), runs)
    raw = timed(raw_call(model, one), runs)
    batched = timed(lambda: model.errors(batch), max(runs // 10, 20))
    return {
        "p50_us": float(np.median(wrapped) * 1e6),
        "p99_us": float(np.quantile(wrapped, 0.99) * 1e6),
        "raw_p50_us": float(np.median(raw) * 1e6),
        "per_s_b1": float(1.0 / np.median(wrapped)),
        "per_s_b64": float(64.0 / np.median(batched)),
    }


def raw_call(model: AnomalyModel, x: np.ndarray) -> Callable[[], object]:
    """The bare backend call on ``x``: the minimal loop the wrapper is compared with."""
    runner: Any = model._runner  # reaching inside on purpose: this is the baseline
    if model.backend == "onnxruntime":
        session = runner._session
        return lambda: session.run(["error"], {"window": x})
    interp = runner._interp
    runner.run(x)  # sizes the tensors for this batch once
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]

    def call() -> object:
        interp.set_tensor(inp, x)
        interp.invoke()
        return interp.get_tensor(out)

    return call


def reference_autoencoder(folder: Path) -> tuple[Path, Path]:
    """A dense 256-96-32-96-256 autoencoder over 8 x 32 windows, fp32 and dynamic int8."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edge_agent.train.graph import OPSET, quantise_int8

    card = ModelCard(
        "reference_ae", tuple(f"s{i}" for i in range(8)), 32, 1.0, (0.0,) * 8, (1.0,) * 8, 1.0
    )
    rng = np.random.default_rng(1)
    sizes = [256, 96, 32, 96, 256]
    inits, nodes, x = [], [helper.make_node("Flatten", ["window"], ["h0"], axis=1)], "h0"
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        w = (rng.normal(size=(a, b)) / np.sqrt(a)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        act = "Relu" if i < len(sizes) - 2 else "Identity"
        nodes += [
            helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"], name="ae" if i == 0 else f"ae{i}"),
            helper.make_node(act, [f"m{i}"], [f"h{i + 1}"]),
        ]
        x = f"h{i + 1}"
    inits.append(numpy_helper.from_array(np.array([-1, 32, 8], np.int64), "shape"))
    nodes += [
        helper.make_node("Reshape", [x, "shape"], ["recon"]),
        helper.make_node("Sub", ["window", "recon"], ["diff"]),
        helper.make_node("Mul", ["diff", "diff"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["error"], axes=[1], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "reference_ae",
        [helper.make_tensor_value_info("window", TensorProto.FLOAT, ["batch", 32, 8])],
        [helper.make_tensor_value_info("error", TensorProto.FLOAT, ["batch", 8])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    helper.set_model_props(model, {"edge_agent.card": card.to_json()})
    fp32, int8 = folder / "reference_ae.fp32.onnx", folder / "reference_ae.onnx"
    onnx.save(model, fp32)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    del quantise_int8  # the shipped models quantise one named node; here every MatMul
    return fp32, int8


def tflite_models() -> dict[str, Path]:
    """The shipped TFLite exports, when LiteRT (the ``tflite`` extra) is installed."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        print("ai-edge-litert not installed: TFLite rows skipped")
        return {}
    return {
        "skab_pump TFLite int8": REPO / "models" / "skab_pump_int8.tflite",
        "skab_pump TFLite fp32": REPO / "models" / "skab_pump_fp32.tflite",
    }


RSS_PROBE = """
import json, sys
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) / 1024
base = rss()
import numpy
from edge_agent.detect.model import load_model
after_numpy = rss()
import importlib
importlib.import_module(sys.argv[2])
after_ort = rss()
m = load_model(sys.argv[1], engine="onnxruntime")
m.errors(numpy.zeros((1, m.card.window, len(m.card.signals)), numpy.float32))
print(json.dumps({"numpy": after_numpy - base, "runtime": after_ort - after_numpy,
                  "model": rss() - after_ort}))
"""


def rss_added(path: Path, runtime: str) -> dict[str, float]:
    """MB of RSS added by importing numpy, the runtime, and loading + running the model."""
    out = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, str(path), runtime],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return {k: float(v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def main(argv: list[str] | None = None) -> int:
    """Measure every model and write the BENCHMARKS.md section."""
    parser = argparse.ArgumentParser(prog="python -m bench.inference")
    parser.add_argument("--quick", action="store_true", help="fewer runs (dev)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    runs = 500 if args.quick else 5000
    with tempfile.TemporaryDirectory() as tmp:
        ref32, ref8 = reference_autoencoder(Path(tmp))
        models = {
            "skab_pump int8": REPO / "models" / "skab_pump.onnx",
            "skab_pump fp32": REPO / "models" / "skab_pump.fp32.onnx",
            **tflite_models(),
            "demo_pump int8": REPO / "edge_agent" / "sim" / "demo_pump.onnx",
            "reference AE int8": ref8,
            "reference AE fp32": ref32,
        }
        rows = []
        for label, path in models.items():
            model = load_model(path, engine="onnxruntime")  # numpy vs ort: bench.model_engine
            m = measure(model, runs)
            rows.append((label, path.stat().st_size, model.card, m))
            print(label, {k: round(v, 1) for k, v in m.items()})
        rss = {"onnxruntime": rss_added(REPO / "models" / "skab_pump.onnx", "onnxruntime")}
        if "skab_pump TFLite int8" in models:
            rss["LiteRT"] = rss_added(models["skab_pump TFLite int8"], "ai_edge_litert.interpreter")
    print("rss", rss)
    if not args.no_write:
        write_section(
            "inference", "Model inference: int8 vs fp32, ONNX and TFLite", _body(rows, rss, runs)
        )
    return 0


HEADER = (
    "| "
    + " | ".join(
        [
            "model",
            "window x signals",
            "file bytes",
            "p50 us",
            "p99 us",
            "raw p50 us",
            "wrapper/raw",
            "windows/s (batch 1)",
            "windows/s (batch 64)",
        ]
    )
    + " |\n|"
    + "---|" * 9
)


def _body(
    rows: list[tuple[str, int, ModelCard, dict[str, float]]],
    rss: dict[str, dict[str, float]],
    runs: int,
) -> str:
    lines = []
    for label, size, card, m in rows:
        lines.append(
            f"| {label} | {card.window} x {len(card.signals)} | {size:,} | {m['p50_us']:.1f} "
            f"| {m['p99_us']:.1f} | {m['raw_p50_us']:.1f} | {m['p50_us'] / m['raw_p50_us']:.2f} "
            f"| {m['per_s_b1']:,.0f} | {m['per_s_b64']:,.0f} |"
        )
    table = "\n".join(lines)
    memory = "\n".join(
        f"| {name} | {r['numpy']:.1f} | {r['runtime']:.1f} | {r['model']:.1f} |"
        for name, r in rss.items()
    )
    return f"""\
One thread (`threads: 1`), {runs} single-window calls per model after warm-up. "wrapper" is
`AnomalyModel.errors` (shape and NaN checks, dtype conversion); "raw" is the bare backend call
(`InferenceSession.run`, or LiteRT set_tensor/invoke/get_tensor) on the same input: the minimal
loop the ratio is taken against. ONNX file sizes include the embedded model card (2-3 KB of
JSON); TFLite files keep their card beside them.

{HEADER}
{table}

RSS added in a fresh process (MB):

| runtime | numpy + edge_agent.detect.model | import runtime | load + first run of skab_pump |
|---|---|---|---|
{memory}

The shipped models are linear (PCA residual, under 100 weights): int8 makes them neither
smaller nor faster; what a call costs is the runtime's per-call overhead. The reference
autoencoder (about 35k weights) shows the int8 effect on a model with real weight mass.
TFLite files are written by `edge_agent/train/tflite.py` straight from LiteRT's
flatbuffer schema (no TensorFlow), for this graph family only.
"""


if __name__ == "__main__":
    raise SystemExit(main())
