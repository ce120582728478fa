"""Whether onnxruntime may saturate a model's u8 x s8 integer products on this CPU.

On x86-64 CPUs with AVX2 or AVX-512 but without VNNI, onnxruntime's u8 x s8 kernels
(MLAS, instruction VPMADDUBSW) add each pair of u8 * s8 products in a saturating
16-bit integer: 255 * 127 * 2 does not fit, so a sum is clamped and the result is
wrong. onnxruntime's quantization documentation says so ("might suffer from
saturation issues"; remedies: ``reduce_range`` or the U8U8 format; no such issue on
x64 with VNNI or on ARM). Measured on an AMD EPYC with avx2 and fma, no VNNI:
MatMulInteger gave -37152 where the exact int32 sum is -43036, and the shipped RUL
model 0.0 cycles where the ONNX definition gives 125.

The numpy engine computes these ops exactly, so the risk is only for models that
run in onnxruntime (``engine: onnxruntime``, or a graph the numpy engine refuses).
This module finds the risky nodes in a file (with the numpy engine's protobuf
reader, so the ``onnx`` package is not needed) and words the warning.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from edge_agent.detect.onnx_proto import NotForNumpy
from edge_agent.detect.onnx_read import DTYPES, Graph, read_model

# /proc/cpuinfo flags of the instructions that sum u8 * s8 products in 32 bits.
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
X86_64 = frozenset({"x86_64", "amd64"})
U8, S8 = np.dtype(np.uint8), np.dtype(np.int8)
# Operator -> (index of the activation input, index of the weight input). The
# com.microsoft ones are what onnxruntime's quantizer and graph optimizer write.
INTEGER_OPS = {
    "MatMulInteger": (0, 1),
    "ConvInteger": (0, 1),
    "QLinearMatMul": (0, 3),
    "QLinearConv": (0, 3),
    "MatMulIntegerToFloat": (0, 1),
    "QGemm": (0, 3),
    "QAttention": (0, 1),
}
# These quantize a float activation to u8 inside the node.
DYNAMIC_OPS = {"DynamicQuantizeMatMul": 1, "DynamicQuantizeLSTM": 1}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The ``flags`` of the first processor in ``cpuinfo`` (empty where there is none)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def may_saturate(flags: Iterable[str], machine: str) -> bool:
    """True on an x86-64 CPU without VNNI: where onnxruntime's u8 x s8 sums may saturate."""
    return machine.lower() in X86_64 and not VNNI_FLAGS & set(flags)


def u8s8_nodes(data: bytes) -> list[str]:
    """The integer nodes of an ONNX file that multiply u8 (or unknown) by s8 weights.

    A file this reader cannot decode (external data, subgraphs) gives an empty list:
    the check is advice, and onnxruntime has already accepted the file.
    """
    try:
        graph = read_model(data).graph
    except NotForNumpy:
        return []
    if graph is None:
        return []
    types = _tensor_types(graph)
    found = []
    for node in graph.nodes:
        if node.op_type in INTEGER_OPS:
            a_at, b_at = INTEGER_OPS[node.op_type]
            a_type = types.get(node.inputs[a_at]) if len(node.inputs) > a_at else None
        elif node.op_type in DYNAMIC_OPS:
            b_at, a_type = DYNAMIC_OPS[node.op_type], U8
        else:
            continue
        b_type = types.get(node.inputs[b_at]) if len(node.inputs) > b_at else None
        if b_type == S8 and a_type in (U8, None):
            found.append(f"{node.op_type} {node.name or node.outputs[0]!r}")
    return found


def _tensor_types(graph: Graph) -> dict[str, np.dtype[np.generic]]:
    """Element types of the named tensors that decide the kernel: weights and activations."""
    types = {name: array.dtype for name, array in graph.initializers.items()}
    for info in (*graph.inputs, *graph.value_info):
        if info.elem_type in DTYPES:
            types.setdefault(info.name, DTYPES[info.elem_type])
    for node in graph.nodes:  # activations quantized inside the graph
        if node.op_type == "DynamicQuantizeLinear":
            types[node.outputs[0]] = U8
        elif node.op_type == "QuantizeLinear" and node.outputs:
            zero = node.inputs[2] if len(node.inputs) > 2 else ""
            types[node.outputs[0]] = types.get(zero, U8)
    return types


def saturation_warning(path: Path, flags: Iterable[str], machine: str) -> str | None:
    """The warning for an ONNX file run by onnxruntime, or None when there is no risk.

    Args:
        path: the model file (read again; its name is in the message).
        flags: the CPU's flags (:func:`cpu_flags`).
        machine: ``platform.machine()``.
    """
    if not may_saturate(flags, machine):
        return None  # the file is not even read on a CPU with VNNI or on ARM
    try:
        data = path.read_bytes()
    except OSError:
        return None
    nodes = u8s8_nodes(data)
    if not nodes:
        return None
    remedy = (
        "set engine: auto (the numpy engine runs this graph exactly)"
        if _numpy_runs(data)
        else "use a model quantized with reduce_range=True (7-bit weights) or u8 weights (U8U8)"
    )
    shown = ", ".join(nodes[:3]) + (f" and {len(nodes) - 3} more" if len(nodes) > 3 else "")
    return (
        f"{path.name}: onnxruntime multiplies u8 x s8 in {shown} with a kernel whose"
        " 16-bit pair sums saturate on x86-64 CPUs without VNNI (this one has none):"
        f" its outputs may be wrong; {remedy}"
    )


def _numpy_runs(data: bytes) -> bool:
    from edge_agent.detect.onnx_small import load_small

    try:
        load_small(data)
    except NotForNumpy:
        return False
    return True


def this_cpu() -> tuple[frozenset[str], str]:
    """This machine's CPU flags and ``platform.machine()``."""
    return cpu_flags(), platform.machine()
