"""TFLite export of the RUL model, written with LiteRT's flatbuffer schema (no TensorFlow).

The same graph as :mod:`rul_graph`, in TFLite builtins::

    window [b, W, n] -SUB-MUL-> z -TRANSPOSE-> [b, n, W]
      -FULLY_CONNECTED(basis^T, keep dims)-> [b, n, K] -RESHAPE-> [b, K*n] -SUB-MUL->
      -FULLY_CONNECTED(W1, int8, RELU)-> [b, M*h] -FULLY_CONNECTED(W2)-> [b, 1]
      -MAXIMUM(0)-MINIMUM(cap)-> rul

``int8=True`` stores W1 as int8 with one scale (LiteRT's dynamic-range hybrid
kernel), the same split as the ONNX int8 model. Reuses the flatbuffer helpers
of :mod:`edge_agent.train.tflite`; the card goes beside the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.train.rul_fit import RulModel, basis
from edge_agent.train.rul_graph import merged, prognostic_card
from edge_agent.train.tflite import Graph, pack


def _const(g: Graph, name: str, value: np.ndarray) -> int:
    data = np.ascontiguousarray(value, np.float32)
    return g.tensor(name, list(data.shape), data)


def _fc(g: Graph, s: Any, x: int, w: int, b: int, out: int, relu: bool, keep: bool) -> None:
    options = s.FullyConnectedOptionsT()
    options.keepNumDims = keep
    if relu:
        options.fusedActivationFunction = s.ActivationFunctionType.RELU
    g.op(
        s.BuiltinOperator.FULLY_CONNECTED,
        [x, w, b],
        [out],
        s.BuiltinOptions.FullyConnectedOptions,
        options,
    )


def _binary(g: Graph, s: Any, op: str, a: int, b: int, name: str, shape: list[int]) -> int:
    out = g.tensor(name, shape)
    kinds = {
        "SUB": "SubOptions",
        "MUL": "MulOptions",
        "MAXIMUM": "MaximumMinimumOptions",
        "MINIMUM": "MaximumMinimumOptions",
    }
    g.op(
        getattr(s.BuiltinOperator, op),
        [a, b],
        [out],
        getattr(s.BuiltinOptions, kinds[op]),
        getattr(s, kinds[op] + "T")(),
    )
    return out


def _hidden_weights(g: Graph, s: Any, w1: np.ndarray, int8: bool) -> int:
    """W1 as FULLY_CONNECTED wants it (``[out, in]``), int8 with one scale if asked."""
    wt = np.ascontiguousarray(w1.T, np.float32)
    if not int8:
        return _const(g, "w1", wt)
    scale = float(np.abs(wt).max() / 127.0) or 1.0
    q = s.QuantizationParametersT()
    q.scale, q.zeroPoint = [scale], [0]
    data = np.clip(np.round(wt / scale), -127, 127).astype(np.int8)
    return g.tensor("w1", list(wt.shape), data, q)


def build_tflite(model: RulModel, int8: bool) -> bytes:
    """The TFLite flatbuffer of ``model``."""
    import flatbuffers  # type: ignore[import-untyped]
    from ai_edge_litert import schema_py_generated as s

    r, net = model.recipe, merged(model)
    n, b = len(r.signals), basis(r.window, r.basis)
    k, width = b.shape[1], net["w1"].shape[1]
    g = Graph(s)
    dims = [-1, r.window, n]
    x = g.tensor("window", dims)
    z = _binary(g, s, "SUB", x, _const(g, "norm_mean", model.norm.mean), "centred", dims)
    z = _binary(g, s, "MUL", z, _const(g, "norm_inv_std", 1 / model.norm.std), "z", dims)
    by_signal = g.tensor("by_signal", [-1, n, r.window])
    perm = g.tensor("perm", [3], np.array([0, 2, 1], np.int32))
    g.op(
        s.BuiltinOperator.TRANSPOSE,
        [z, perm],
        [by_signal],
        s.BuiltinOptions.TransposeOptions,
        s.TransposeOptionsT(),
    )
    summaries = g.tensor("summaries", [-1, n, k])
    _fc(g, s, by_signal, _const(g, "basis", b.T), -1, summaries, relu=False, keep=True)
    flat = g.tensor("raw_features", [-1, n * k])
    shape = g.tensor("flat_shape", [2], np.array([-1, n * k], np.int32))
    options = s.ReshapeOptionsT()
    options.newShape = [-1, n * k]
    g.op(
        s.BuiltinOperator.RESHAPE,
        [summaries, shape],
        [flat],
        s.BuiltinOptions.ReshapeOptions,
        options,
    )
    f = _binary(g, s, "SUB", flat, _const(g, "feat_mean", model.feat.mean), "cf", [-1, n * k])
    f = _binary(g, s, "MUL", f, _const(g, "feat_inv_std", 1 / model.feat.std), "f", [-1, n * k])
    hidden = g.tensor("hidden", [-1, width])
    _fc(
        g,
        s,
        f,
        _hidden_weights(g, s, net["w1"], int8),
        _const(g, "b1", net["b1"]),
        hidden,
        relu=True,
        keep=False,
    )
    out = g.tensor("ensemble", [-1, 1])
    _fc(
        g,
        s,
        hidden,
        _const(g, "w2", net["w2"].T),
        _const(g, "b2", net["b2"]),
        out,
        relu=False,
        keep=False,
    )
    low = _binary(g, s, "MAXIMUM", out, _const(g, "rul_min", np.zeros(1)), "floored", [-1, 1])
    rul = _binary(g, s, "MINIMUM", low, _const(g, "rul_max", np.array([r.cap])), "rul", [-1, 1])
    return bytes(pack(s, g, x, rul, flatbuffers))


def export(
    model: RulModel,
    out: Path,
    int8: bool,
    info: dict[str, Any] | None = None,
    name: str = "cmapss-fd001-rul",
) -> Path:
    """Write ``out`` (.tflite) and its card beside it (``<stem>.card.json``)."""
    out.write_bytes(build_tflite(model, int8))
    extra = {**(info or {}), "format": "tflite int8" if int8 else "tflite fp32"}
    card = prognostic_card(model, extra, name)
    out.with_name(out.stem + ".card.json").write_text(json.dumps(card, indent=2) + "\n")
    return out


class TfliteRul:
    """A TFLite RUL model run by LiteRT on one thread (batch 1 per call)."""

    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=str(path), num_threads=1)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]["index"]
        self.out = self.interp.get_output_details()[0]["index"]

    def predict(self, raw_windows: np.ndarray) -> np.ndarray:
        """RUL ``[b]`` of raw windows ``[b, W, n]``, one window per invoke."""
        preds = []
        for window in np.asarray(raw_windows, np.float32):
            self.interp.set_tensor(self.inp, window[np.newaxis])
            self.interp.invoke()
            preds.append(float(self.interp.get_tensor(self.out)[0, 0]))
        return np.array(preds)
