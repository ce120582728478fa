"""Referees for the numpy engine that are exact on every CPU.

* ``onnx.reference.ReferenceEvaluator``: onnx's own implementation of the
  operator definitions, in numpy (its float MatMul therefore shares numpy's BLAS
  with our engine; its integer ops and quantisation are its own code).
* onnxruntime, where its kernels are exact. On x86-64 without VNNI its u8 x s8
  integer kernels add pairs of products in saturating int16
  (:mod:`edge_agent.detect.u8s8_risk`); there, :func:`for_onnxruntime` hands it the
  same graph with its s8 weights stored as u8 (w + 128, zero point + 128), equal
  by the ONNX definition, which it computes with its exact U8U8 kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from edge_agent.detect.u8s8_risk import may_saturate, this_cpu

# onnxruntime's u8 x s8 sums may saturate on this machine's CPU.
ORT_U8S8_SATURATES = may_saturate(*this_cpu())


def reference(data: bytes) -> Any:
    """onnx's reference evaluator of a model's bytes (``run(names, feeds)`` as a session)."""
    return ReferenceEvaluator(onnx.load_from_string(data))


def for_onnxruntime(data: bytes) -> bytes:
    """``data`` as onnxruntime computes it exactly on this CPU (the same graph's bytes)."""
    return u8_weights(data) if ORT_U8S8_SATURATES else data


def u8_weights(data: bytes) -> bytes:
    """The model with every constant s8 MatMulInteger weight and zero point stored as u8."""
    model = onnx.load_from_string(data)
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        weight = inits.get(node.input[1]) if node.op_type == "MatMulInteger" else None
        if weight is None or weight.data_type != onnx.TensorProto.INT8:
            continue  # not a constant s8 weight, or one already shifted for another node
        weight.CopyFrom(_shifted(weight))
        zero = node.input[3] if len(node.input) > 3 and node.input[3] else None
        if zero is not None:
            if inits[zero].data_type == onnx.TensorProto.INT8:
                inits[zero].CopyFrom(_shifted(inits[zero]))
        else:  # the default zero point 0 becomes 128
            name = f"{weight.name}_u8_zero_point"
            model.graph.initializer.append(numpy_helper.from_array(np.array(128, np.uint8), name))
            inputs = [*node.input, "", ""][:3]
            del node.input[:]
            node.input.extend([*inputs[:2], inputs[2], name])
    encoded: bytes = model.SerializeToString()
    return encoded


def _shifted(tensor: onnx.TensorProto) -> onnx.TensorProto:
    values = numpy_helper.to_array(tensor).astype(np.int16) + 128
    return numpy_helper.from_array(values.astype(np.uint8), tensor.name)
