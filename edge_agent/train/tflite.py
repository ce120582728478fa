"""TFLite export of the linear window models, written as a flatbuffer directly.

There is no general ONNX -> TFLite converter without TensorFlow. The shipped
models are one small graph family (see :mod:`edge_agent.train.graph`),
so this module writes that graph with LiteRT's own flatbuffer schema
(``ai_edge_litert.schema_py_generated``, in the ``tflite`` extra)::

    window [b, W, n] -MEAN(axis 1)-> FULLY_CONNECTED(R^T) -> MUL(self) -> MUL(1/v) -> error [b, n]

``int8=True`` stores the FULLY_CONNECTED weights as int8 with one scale
(LiteRT's "dynamic range" hybrid kernel: float activations, int8 weights), the
same split as the ONNX int8 model. The card goes beside the file
(``<stem>.card.json``): TFLite files carry no edge-agent metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.detect.card import ModelCard, write_sidecar
from edge_agent.errors import ModelError


def weights_from_onnx(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(residual_projection, inv_variance)`` of an fp32 model built by train_graph."""
    import onnx
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    if "time_weights" in inits or "residual_projection" not in inits:
        raise ModelError(f"{path.name}: not a plain window-mean model; cannot export to TFLite")
    return inits["residual_projection"], inits["inv_variance"]


class Graph:
    """Tensors, buffers and operators of one subgraph under construction."""

    def __init__(self, schema: Any) -> None:
        self.s = schema
        self.buffers = [schema.BufferT()]  # buffer 0: the empty sentinel
        self.tensors: list[Any] = []
        self.ops: list[Any] = []
        self.codes: list[int] = []

    def tensor(
        self, name: str, shape: list[int], data: np.ndarray | None = None, quant: Any = None
    ) -> int:
        t = self.s.TensorT()
        t.name, t.shape, t.quantization = name, [max(d, 1) for d in shape], quant
        t.type = {
            np.dtype(np.float32): self.s.TensorType.FLOAT32,
            np.dtype(np.int32): self.s.TensorType.INT32,
            np.dtype(np.int8): self.s.TensorType.INT8,
        }[data.dtype if data is not None else np.dtype(np.float32)]
        if -1 in shape:
            t.shapeSignature = shape
        if data is not None:
            b = self.s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(
        self,
        code: int,
        inputs: list[int],
        outputs: list[int],
        options_type: int = 0,
        options: Any = None,
    ) -> None:
        if code not in self.codes:
            self.codes.append(code)
        o = self.s.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes.index(code), inputs, outputs
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.ops.append(o)


def build_tflite(card: ModelCard, residual: np.ndarray, inv_var: np.ndarray, int8: bool) -> bytes:
    """The TFLite flatbuffer of the window-mean model."""
    import flatbuffers  # type: ignore[import-untyped]
    from ai_edge_litert import schema_py_generated as s

    w, n = card.window, len(card.signals)
    g = Graph(s)
    x = g.tensor("window", [-1, w, n])
    axis = g.tensor("time_axis", [1], np.array([1], np.int32))
    mean = g.tensor("smoothed", [-1, n])
    g.op(
        s.BuiltinOperator.MEAN,
        [x, axis],
        [mean],
        s.BuiltinOptions.ReducerOptions,
        s.ReducerOptionsT(),
    )
    fc_w = np.asarray(residual, np.float32).T  # FULLY_CONNECTED computes x @ W^T
    if int8:
        scale = float(np.abs(fc_w).max() / 127.0) or 1.0
        q = s.QuantizationParametersT()
        q.scale, q.zeroPoint = [scale], [0]
        weights = g.tensor(
            "residual_projection",
            [n, n],
            np.clip(np.round(fc_w / scale), -127, 127).astype(np.int8),
            q,
        )
    else:
        weights = g.tensor("residual_projection", [n, n], fc_w)
    res = g.tensor("residual", [-1, n])
    g.op(
        s.BuiltinOperator.FULLY_CONNECTED,
        [mean, weights, -1],
        [res],
        s.BuiltinOptions.FullyConnectedOptions,
        s.FullyConnectedOptionsT(),
    )
    sq = g.tensor("squared", [-1, n])
    g.op(s.BuiltinOperator.MUL, [res, res], [sq], s.BuiltinOptions.MulOptions, s.MulOptionsT())
    inv = g.tensor("inv_variance", [n], np.asarray(inv_var, np.float32).reshape(n))
    err = g.tensor("error", [-1, n])
    g.op(s.BuiltinOperator.MUL, [sq, inv], [err], s.BuiltinOptions.MulOptions, s.MulOptionsT())
    return pack(s, g, x, err, flatbuffers)


def pack(s: Any, g: Graph, x: int, err: int, flatbuffers: Any) -> bytes:
    sub = s.SubGraphT()
    sub.tensors, sub.operators, sub.inputs, sub.outputs, sub.name = (
        g.tensors,
        g.ops,
        [x],
        [err],
        "main",
    )
    codes = []
    for code in g.codes:
        c = s.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = code, code, 1
        codes.append(c)
    model = s.ModelT()
    model.version, model.description = 3, "edge-agent window model"
    model.operatorCodes, model.subgraphs, model.buffers = codes, [sub], g.buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def export(fp32_onnx: Path, out: Path, card: ModelCard, int8: bool) -> Path:
    """Write ``out`` (.tflite) from an fp32 ONNX model of train_graph, card beside it."""
    residual, inv_var = weights_from_onnx(fp32_onnx)
    out.write_bytes(build_tflite(card, residual, inv_var, int8))
    write_sidecar(
        out, card.replace(info={**card.info, "format": "tflite int8" if int8 else "tflite fp32"})
    )
    return out
