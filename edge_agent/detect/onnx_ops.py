"""The operators of the numpy engine, each exactly as the ONNX spec defines it.

A builder checks one node at load (opset, attributes, input types) and returns a
step: a function of the node's input arrays that returns its outputs, and the
output dtypes. A builder raises :class:`NotForNumpy` for anything it does not
implement exactly, so that the loader falls back to onnxruntime instead.

Where exactness is decided:

* ``DynamicQuantizeLinear``: scale ``(max(0, x) - min(0, x)) / 255`` in float32
  (1 when both are 0), zero point ``round(clamp(0 - min / scale, 0, 255))``,
  ``y = round(clamp(x / scale, -zp, 255 - zp)) + zp``, rounding half to even, the
  clamp before the rounding as onnxruntime does (a NaN quotient becomes ``-zp``).
  An input range that is not finite (inf or NaN in it, or max - min overflowing) is
  refused: onnxruntime's answer then depends on its SIMD lanes and fused kernels.
* ``MatMulInteger``: the zero-point-shifted operands multiplied in float64, where
  every partial sum is an integer below 2**53 and so exact in any order. (onnxruntime
  is not exact here on x86-64 without VNNI: its u8 x s8 kernel saturates pair sums
  to int16, see :mod:`~edge_agent.detect.u8s8_risk`.)
* ``ReduceMean``/``ReduceSum`` add along the reduced axis in order and divide by
  the count in the input's type: what onnxruntime does for one window. For a batch
  it sums a middle axis through its GEMM kernel, in another order (the last bits
  differ); ``MatMul`` in float32 goes through numpy's BLAS, which may differ from
  onnxruntime's MLAS in the last bits likewise (within 1e-6 on an AMD EPYC with FMA;
  onnx's reference evaluator agrees bit for bit: tests/detect/test_onnx_small.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.detect.onnx_proto import NotForNumpy
from edge_agent.detect.onnx_read import DTYPES, Node

Array = np.ndarray
Step = Callable[..., tuple[Array, ...]]
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
INT8S = (np.dtype(np.uint8), np.dtype(np.int8))
F32, U8, I32, I64 = (np.dtype(t) for t in (np.float32, np.uint8, np.int32, np.int64))
# AttributeProto.AttributeType values used here.
FLOAT, INT, INTS = 1, 2, 7
# The widest MatMulInteger depth whose int32 sum cannot overflow (255 * 255 per term).
MAX_DEPTH = (2**31 - 1) // (255 * 255)
_SUM: Any = np.add.reduce  # np.sum without its Python wrapper (~1 us a call)


class OpError(ValueError):
    """A value the engine refuses at run time (onnxruntime leaves it undefined)."""


@dataclass(frozen=True)
class Ctx:
    """What a builder may look at: the opset, input dtypes and constant inputs."""

    opset: int
    dtypes: Sequence[np.dtype[Any] | None]  # None: an absent optional input
    consts: Sequence[Array | None]  # the initializer behind each input, if any


Builder = Callable[[Node, Ctx], tuple[Step, list[np.dtype[Any]]]]


def attrs(node: Node, allowed: dict[str, int]) -> dict[str, Any]:
    """The node's attributes by name, each of the kind ``allowed`` says; others refused."""
    out: dict[str, Any] = {}
    for name, attr in node.attributes.items():
        if allowed.get(name) != attr.kind:
            raise NotForNumpy(f"{node.op_type}: attribute {name!r} (kind {attr.kind})")
        out[name] = attr.value
    return out


def dtype0(ctx: Ctx) -> np.dtype[Any]:
    """The first input's dtype (checked present by :func:`need`)."""
    dtype = ctx.dtypes[0] if ctx.dtypes else None
    if dtype is None:
        raise NotForNumpy("no first input")
    return dtype


def need(node: Node, ctx: Ctx, count: tuple[int, int], types: Sequence[Any], since: int) -> None:
    """Check opset, input count (min, max) and that every present input is of ``types``."""
    if ctx.opset < since:
        raise NotForNumpy(f"{node.op_type} before opset {since}")
    if not count[0] <= len(ctx.dtypes) <= count[1] or any(
        d is None for d in ctx.dtypes[: count[0]]
    ):
        raise NotForNumpy(f"{node.op_type}: {len(ctx.dtypes)} inputs")
    for dtype in ctx.dtypes:
        if dtype is not None and dtype not in types:
            raise NotForNumpy(f"{node.op_type}: input of type {dtype}")


def _binary(ufunc: np.ufunc) -> Builder:
    def build(node: Node, ctx: Ctx) -> tuple[Step, list[np.dtype[Any]]]:
        need(node, ctx, (2, 2), FLOATS, 7)  # opset 7: numpy-style broadcasting
        attrs(node, {})
        if ctx.dtypes[0] != ctx.dtypes[1]:
            raise NotForNumpy(f"{node.op_type}: mixed input types")

        def step(a: Array, b: Array) -> tuple[Array]:
            return (ufunc(a, b),)

        return step, [dtype0(ctx)]

    return build


def relu(node: Node, ctx: Ctx) -> tuple[Step, list[np.dtype[Any]]]:
    """max(x, 0)."""
    need(node, ctx, (1, 1), FLOATS, 6)
    attrs(node, {})
    zero = dtype0(ctx).type(0)

    def step(x: Array) -> tuple[Array]:
        return (np.maximum(x, zero),)  # NaN stays NaN, as in onnxruntime

    return step, [dtype0(ctx)]


def matmul(node: Node, ctx: Ctx) -> tuple[Step, list[np.dtype[Any]]]:
    """numpy's matmul has ONNX MatMul's broadcasting and 1-D rules."""
    need(node, ctx, (2, 2), FLOATS, 1)
    attrs(node, {})
    if ctx.dtypes[0] != ctx.dtypes[1]:
        raise NotForNumpy("MatMul: mixed input types")

    def step(a: Array, b: Array) -> tuple[Array]:
        return (np.matmul(a, b),)

    return step, [dtype0(ctx)]


def identity(node: Node, ctx: Ctx) -> tuple[Step, list[np.dtype[Any]]]:
    """The input, unchanged."""
    need(node, ctx, (1, 1), tuple(DTYPES.values()), 1)
    attrs(node, {})
    return (lambda x: (x,)), [dtype0(ctx)]


def cast(node: Node, ctx: Ctx) -> tuple[Step, list[np.dtype[Any]]]:
    """To float32/float64 only: from those, from bool and from integers up to int64."""
    sources = [t for k, t in DTYPES.items() if k != 13]  # uint64: compilers differ
    need(node, ctx, (1, 1), sources, 6)
    allowed = {"to": INT, "saturate": INT} if ctx.opset >= 19 else {"to": INT}
    to = attrs(node, allowed).get("to")  # saturate only changes float8 targets
    if to not in (1, 11):
        raise NotForNumpy(f"Cast to data type {to}")
    target = DTYPES[to]

    def step(x: Array) -> tuple[Array]:
        return (x.astype(target, copy=False),)

    return step, [target]


def transpose(node: Node, ctx: Ctx) -> tuple[Step, list[np.dtype[Any]]]:
    """np.transpose with ``perm`` (default: reversed axes)."""
    need(node, ctx, (1, 1), tuple(DTYPES.values()), 1)
    perm = attrs(node, {"perm": INTS}).get("perm")

    def step(x: Array) -> tuple[Array]:
        if perm is not None and sorted(perm) != list(range(x.ndim)):
            raise OpError(f"Transpose: perm {list(perm)} for rank {x.ndim}")
        return (np.transpose(x, perm),)

    return step, [dtype0(ctx)]


def _const_ints(node: Node, ctx: Ctx, index: int) -> tuple[int, ...] | None:
    """A constant int64 input (axes, shape) as a tuple; None when absent."""
    if index >= len(ctx.dtypes) or ctx.dtypes[index] is None:
        return None
    value = ctx.consts[index]
    if value is None or value.dtype != I64 or value.ndim != 1:
        raise NotForNumpy(f"{node.op_type}: input {index} is not a constant int64 list")
    return tuple(int(v) for v in value)


def reshape(node: Node, ctx: Ctx) -> tuple[Step, list[np.dtype[Any]]]:
    """Reshape to a constant shape; 0 copies the input's dim unless ``allowzero``."""
    need(node, ctx, (2, 2), (*DTYPES.values(),), 5)
    allowzero = attrs(node, {"allowzero": INT} if ctx.opset >= 14 else {}).get("allowzero", 0)
    if allowzero not in (0, 1):
        raise NotForNumpy(f"Reshape: allowzero {allowzero}")
    shape = _const_ints(node, ctx, 1)
    if shape is None or any(s < -1 for s in shape) or shape.count(-1) > 1:
        raise NotForNumpy(f"Reshape to {shape}")  # numpy would read any negative as -1

    def step(x: Array, _: Array) -> tuple[Array]:
        if allowzero or 0 not in shape:
            return (x.reshape(shape),)
        if len(shape) > x.ndim and 0 in shape[x.ndim :]:
            raise OpError(f"Reshape: 0 beyond the input's rank {x.ndim}")
        return (x.reshape([x.shape[i] if s == 0 else s for i, s in enumerate(shape)]),)

    return step, [dtype0(ctx)]


def _axes(node: Node, ctx: Ctx, as_input: bool) -> tuple[tuple[int, ...] | None, bool]:
    """The reduction's axes (None: all) and whether to keep dims; refuses noop_with_empty_axes."""
    names = {"keepdims": INT, "noop_with_empty_axes": INT} if as_input else {"keepdims": INT}
    given = attrs(node, names if as_input else {**names, "axes": INTS})
    if given.get("noop_with_empty_axes", 0) or given.get("keepdims", 1) not in (0, 1):
        raise NotForNumpy(f"{node.op_type}: noop_with_empty_axes, or keepdims not 0/1")
    axes = _const_ints(node, ctx, 1) if as_input else given.get("axes")
    return (tuple(axes) if axes else None), given.get("keepdims", 1) == 1


def _reduce(mean: bool, input_since: int) -> Builder:
    def build(node: Node, ctx: Ctx) -> tuple[Step, list[np.dtype[Any]]]:
        as_input = ctx.opset >= input_since
        need(node, ctx, (1, 2 if as_input else 1), (*FLOATS, I64), 1)
        if ctx.dtypes[0] not in FLOATS:
            raise NotForNumpy(f"{node.op_type}: input of type {ctx.dtypes[0]}")
        axes, keep = _axes(node, ctx, as_input)

        by_rank: dict[int, tuple[int, ...]] = {}

        def step(x: Array, *_: Array) -> tuple[Array]:
            norm = by_rank.get(x.ndim)
            if norm is None:
                norm = tuple(range(x.ndim)) if axes is None else _normal_axes(axes, x.ndim)
                by_rank[x.ndim] = norm
            total = np.asarray(_SUM(x, axis=norm, keepdims=keep))
            if mean:  # onnxruntime divides the sum by the count, in the input's type
                count = math.prod(x.shape[a] for a in norm)
                total = np.divide(total, count, dtype=x.dtype)
            return (total,)

        return step, [dtype0(ctx)]

    return build


def _normal_axes(axes: tuple[int, ...], rank: int) -> tuple[int, ...]:
    out = tuple(a + rank if a < 0 else a for a in axes)
    if len(set(out)) != len(out) or not all(0 <= a < rank for a in out):
        raise OpError(f"axes {list(axes)} for rank {rank}")
    return out


def clip(node: Node, ctx: Ctx) -> tuple[Step, list[np.dtype[Any]]]:
    """Clip to scalar min/max: inputs from opset 11, attributes before.

    An absent bound is the type's finite limit, as in onnxruntime: inf is clipped to it.
    """
    dtype = dtype0(ctx)
    limit = float(np.finfo(dtype).max) if dtype in FLOATS else 0.0
    given: dict[str, Any] = {}
    if ctx.opset >= 11:
        need(node, ctx, (1, 3), FLOATS, 11)
        attrs(node, {})
        if any(d is not None and d != dtype for d in ctx.dtypes[1:]):
            raise NotForNumpy("Clip: min/max of another type")
    else:
        need(node, ctx, (1, 1), (F32,), 6)
        given = attrs(node, {"min": FLOAT, "max": FLOAT})
    bounds = (given.get("min", -limit), given.get("max", limit))

    def step(x: Array, lo: Array | None = None, hi: Array | None = None) -> tuple[Array]:
        low, high = x.dtype.type(_bound(lo, bounds[0])), x.dtype.type(_bound(hi, bounds[1]))
        return (np.minimum(np.maximum(x, low), high),)

    return step, [dtype]


def _bound(given: Array | None, default: float) -> float:
    if given is None:
        return default
    if given.size != 1 or given.ndim > 1:
        raise OpError(f"Clip: min/max must be scalars, got shape {list(given.shape)}")
    return float(given.reshape(()))


def dynamic_quantize(node: Node, ctx: Ctx) -> tuple[Step, list[np.dtype[Any]]]:
    """DynamicQuantizeLinear to uint8 (see the module docstring)."""
    need(node, ctx, (1, 1), (F32,), 11)
    attrs(node, {})
    if len(node.outputs) != 3:
        raise NotForNumpy("DynamicQuantizeLinear without its three outputs")
    return _quantize, [U8, F32, U8]


_F0, _F255 = np.float32(0), np.float32(255)


def _quantize(x: Array) -> tuple[Array, Array, Array]:
    # min/max are float32 scalars; std::min(min, 0) / std::max(max, 0) as onnxruntime has them.
    lo = min(x.min(), _F0) if x.size else _F0
    hi = max(x.max(), _F0) if x.size else _F0
    scale = np.float32(1) if hi == lo else (hi - lo) / _F255
    if not math.isfinite(scale):
        raise OpError(f"DynamicQuantizeLinear: input range [{lo}, {hi}] is not finite")
    start = 0.0 - float(lo / scale)  # float32 quotient, exact in a double
    # std::min(255, v) / std::max(0, v) as onnxruntime writes them: a NaN gives 255.
    start = 255.0 if not start < 255 else start
    zero = float(round(start if start > 0 else 0.0))  # round(): half to even, as nearbyint
    q = x / scale
    if scale:  # |x / scale| <= 256: no NaN, so plain max/min clamp as onnxruntime's does
        np.maximum(q, -zero, out=q)
        np.minimum(q, 255.0 - zero, out=q)
    else:  # scale underflowed to 0: x / 0 is inf or NaN; a NaN clamps to -zero
        q = np.fmin(np.fmax(q, np.float32(-zero)), np.float32(255.0 - zero))
    np.rint(q, out=q)  # the bounds are integers: rounding after the clamp is the same
    q += zero
    return q.astype(np.uint8), np.asarray(scale), np.asarray(int(zero), dtype=np.uint8)


def matmul_integer(node: Node, ctx: Ctx) -> tuple[Step, list[np.dtype[Any]]]:
    """MatMulInteger with a scalar A zero point and a scalar or per-column B one."""
    need(node, ctx, (2, 4), INT8S, 10)
    attrs(node, {})
    for data, zp in ((0, 2), (1, 3)):
        if zp < len(ctx.dtypes) and ctx.dtypes[zp] not in (None, ctx.dtypes[data]):
            raise NotForNumpy("MatMulInteger: a zero point of another type than its tensor")
    b, b_zp = ctx.consts[1], ctx.consts[3] if len(ctx.consts) > 3 else None
    has_b_zp = len(ctx.dtypes) > 3 and ctx.dtypes[3] is not None
    fixed_b = None
    if b is not None and (b_zp is not None or not has_b_zp):
        try:
            fixed_b = _shift_b(b, b_zp)
        except OpError as exc:
            raise NotForNumpy(str(exc)) from exc

    def step(
        a: Array, b: Array, a_zp: Array | None = None, b_zp: Array | None = None
    ) -> tuple[Array]:
        if a_zp is not None and a_zp.size != 1:
            raise OpError("MatMulInteger: a_zero_point must be a scalar")
        left = a.astype(np.float64)
        if a_zp is not None:
            left -= float(a_zp.reshape(()))
        right = fixed_b if fixed_b is not None else _shift_b(b, b_zp)
        if left.shape[-1] > MAX_DEPTH:
            raise OpError(f"MatMulInteger: depth {left.shape[-1]} could overflow int32")
        return (np.matmul(left, right).astype(np.int32),)

    return step, [I32]


def _shift_b(b: Array, zp: Array | None) -> Array:
    right = b.astype(np.float64)
    if zp is None:
        return right
    if zp.size == 1:
        return right - float(zp.reshape(()))
    if zp.ndim != 1 or b.ndim != 2 or zp.shape[0] != b.shape[1]:
        raise OpError(f"MatMulInteger: b_zero_point of shape {list(zp.shape)}")
    return right - zp.astype(np.float64)


OPS: dict[str, Builder] = {
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Relu": relu,
    "MatMul": matmul,
    "MatMulInteger": matmul_integer,
    "DynamicQuantizeLinear": dynamic_quantize,
    "Cast": cast,
    "Identity": identity,
    "Transpose": transpose,
    "Reshape": reshape,
    "ReduceMean": _reduce(mean=True, input_since=18),
    "ReduceSum": _reduce(mean=False, input_since=13),
    "Clip": clip,
}
