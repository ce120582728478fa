"""Each operator of the numpy engine against onnxruntime, on graphs built with onnx.helper.

onnxruntime runs each graph as :func:`tests.detect.test_onnx_small.both` gives it:
the same graph, its s8 integer weights stored as u8 where onnxruntime's u8 x s8
kernel saturates on this CPU. Integer ops are also checked against onnx's
reference evaluator, and against onnxruntime on the unchanged graph with inputs
that cannot saturate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge_agent.detect.onnx_small import NotForNumpy, OpError, load_small
from tests.detect.referees import reference
from tests.detect.test_onnx_small import both, session

F = TensorProto.FLOAT


def graph_bytes(
    nodes: Sequence[Any],
    inputs: Sequence[tuple[str, int, Sequence[Any] | None]],
    outputs: Sequence[tuple[str, int]],
    inits: Sequence[Any] = (),
    opset: int = 17,
) -> bytes:
    graph = helper.make_graph(
        list(nodes),
        "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
        initializer=list(inits),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    encoded: bytes = model.SerializeToString()
    return encoded


def same(data: bytes, feeds: dict[str, np.ndarray], *, rtol: float = 0.0) -> None:
    """Both engines give the same outputs (bit for bit unless ``rtol``), NaN where NaN."""
    graph, sess = both(data)
    names = [o.name for o in sess.get_outputs()]
    mine, theirs = graph.run(names, feeds), sess.run(names, feeds)
    for a, b in zip(mine, theirs, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        if rtol:  # sums cancel: the tolerance is relative to the largest output
            scale = float(np.nanmax(np.abs(b))) if b.size else 0.0
            np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale, equal_nan=True)
        else:
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), (a, b)


def dql_bytes() -> bytes:
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])
    outs = [("y", TensorProto.UINT8), ("s", F), ("z", TensorProto.UINT8)]
    return graph_bytes([node], [("x", F, None)], outs, opset=11)


def dql_inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    ties = (np.arange(-40, 40) + 0.5) * np.float32(2.0 / 255)  # x / scale lands on .5
    cases = [
        np.zeros(7),
        np.full(9, 2.5),
        np.full(9, -2.5),
        np.array([-0.0, 0.0, -0.0]),
        np.full(5, 1e-42),
        np.array([1e-45, -1e-45, 0.0]),
        np.array([3.0e38, 1.0, -1.0]),
        np.array([-3.0e38, 1.0]),
        np.linspace(-1, 1, 101),
        np.append(ties, [1.0, -1.0]),
        rng.normal(size=300) * 1e-3,
        rng.uniform(0, 5, size=(3, 17)),
        rng.uniform(-5, 0, size=(4, 33)),
        np.zeros(0),
    ]
    return [c.astype(np.float32) for c in cases]


@pytest.mark.parametrize("x", dql_inputs(), ids=lambda x: f"{x.shape}")
def test_dynamic_quantize_linear_is_exact(x: np.ndarray) -> None:
    same(dql_bytes(), {"x": x})


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_dynamic_quantize_linear_refuses_a_range_that_is_not_finite(bad: float) -> None:
    graph = load_small(dql_bytes())
    with pytest.raises(OpError, match="not finite"):
        graph.run(["y"], {"x": np.array([1.0, bad, -2.0], np.float32)})
    with pytest.raises(OpError, match="not finite"):  # max - min overflows
        graph.run(["y"], {"x": np.array([3e38, -3e38], np.float32)})


@pytest.mark.parametrize(
    ("a_type", "b_type", "b_zp"),
    [
        (TensorProto.UINT8, TensorProto.INT8, [3]),
        (TensorProto.UINT8, TensorProto.UINT8, [200]),
        (TensorProto.UINT8, TensorProto.INT8, list(range(-3, 2))),  # per column
        (TensorProto.UINT8, TensorProto.INT8, None),
    ],
)
def test_matmul_integer_is_exact(a_type: int, b_type: int, b_zp: list[int] | None) -> None:
    rng = np.random.default_rng(5)
    b_np = onnx.helper.tensor_dtype_to_np_dtype(b_type)
    info = np.iinfo(b_np)
    b = rng.integers(info.min, info.max + 1, size=(40, 5)).astype(b_np)
    inits = [helper.make_tensor("b", b_type, b.shape, b.flatten().tolist())]
    ins = ["a", "b", "azp"]
    if b_zp is not None:
        shape = [] if len(b_zp) == 1 else [len(b_zp)]
        inits.append(helper.make_tensor("bzp", b_type, shape, b_zp))
        ins.append("bzp")
    node = helper.make_node("MatMulInteger", ins, ["y"])
    data = graph_bytes(
        [node],
        [("a", a_type, ["n", 40]), ("azp", a_type, [])],
        [("y", TensorProto.INT32)],
        inits,
        opset=10,
    )
    graph, referee, unchanged = load_small(data), reference(data), session(data)
    for zp in (0, 128, 255):
        a = rng.integers(0, 256, size=(int(rng.integers(1, 6)), 40)).astype(np.uint8)
        feeds = {"a": a, "azp": np.array(zp, np.uint8)}
        same(data, feeds)
        assert np.array_equal(graph.run(["y"], feeds)[0], referee.run(["y"], feeds)[0])
        # u8 activations up to 127 cannot saturate onnxruntime's u8 x s8 pair sums
        # (127 * 128 * 2 < 2**15): its own kernel on the graph as written.
        small = {"a": a // 2, "azp": np.array(zp // 2, np.uint8)}
        assert np.array_equal(graph.run(["y"], small)[0], unchanged.run(["y"], small)[0])


def reduce_bytes(op: str, opset: int, axes: list[int] | None, keepdims: int) -> bytes:
    kw: dict[str, Any] = {"keepdims": keepdims}
    ins, inits = ["x"], []
    if axes is not None and opset >= (18 if op == "ReduceMean" else 13):
        ins.append("axes")
        inits.append(helper.make_tensor("axes", TensorProto.INT64, [len(axes)], axes))
    elif axes is not None:
        kw["axes"] = axes
    node = helper.make_node(op, ins, ["y"], **kw)
    return graph_bytes([node], [("x", F, None)], [("y", F)], inits, opset=opset)


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum"])
@pytest.mark.parametrize("opset", [11, 13, 17, 18])
@pytest.mark.parametrize(("axes", "keepdims"), [([1], 0), ([1], 1), ([-2], 0), (None, 1)])
def test_reductions(op: str, opset: int, axes: list[int] | None, keepdims: int) -> None:
    data = reduce_bytes(op, opset, axes, keepdims)
    rng = np.random.default_rng(opset)
    for shape in ((1, 20, 8), (4, 20, 8), (3, 5, 5), (2, 30, 14)):
        x = (rng.normal(size=shape) * 100).astype(np.float32)
        # A middle axis of a batch is summed in onnxruntime's SIMD order: last bits only.
        exact = shape[0] == 1 and axes is not None
        same(data, {"x": x}, rtol=0.0 if exact else 3e-6)


def test_clip_relu_and_elementwise_keep_nan_and_inf_as_onnxruntime() -> None:
    inits = [
        helper.make_tensor("lo", F, [], [-0.5]),
        helper.make_tensor("hi", F, [], [0.5]),
        helper.make_tensor("w", F, [3], [2.0, -1.0, 0.0]),
    ]
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Clip", ["x", "lo", "hi"], ["c"]),
        helper.make_node("Clip", ["x", "", "hi"], ["c_hi"]),
        helper.make_node("Clip", ["x", "lo"], ["c_lo"]),
        helper.make_node("Mul", ["x", "w"], ["m"]),
        helper.make_node("Add", ["x", "w"], ["a"]),
        helper.make_node("Sub", ["w", "x"], ["s"]),
    ]
    outs = [(n, F) for n in ("r", "c", "c_hi", "c_lo", "m", "a", "s")]
    data = graph_bytes(nodes, [("x", F, [None, 3])], outs, inits, opset=13)
    special = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-42, 3e38, -3e38, 0.25, -7.0]
    x = np.array(special * 6, np.float32)
    for shift in range(5):  # NaN in every SIMD lane
        same(data, {"x": np.roll(x, shift)[: 3 * 19].reshape(19, 3)})


def test_clip_before_opset_11_uses_attributes_and_float_limits() -> None:
    nodes = [
        helper.make_node("Clip", ["x"], ["a"], min=-1.0, max=2.0),
        helper.make_node("Clip", ["x"], ["b"]),
    ]
    data = graph_bytes(nodes, [("x", F, None)], [("a", F), ("b", F)], opset=10)
    same(data, {"x": np.array([np.inf, -np.inf, 5.0, -5.0, 0.5], np.float32)})


def test_shape_ops_cast_and_matmul() -> None:
    inits = [
        helper.make_tensor("shape", TensorProto.INT64, [3], [0, -1, 2]),
        helper.make_tensor("w", F, [6, 4], np.arange(24, dtype=np.float32).tolist()),
        helper.make_tensor("big", TensorProto.INT64, [2], [2**53 + 1, -(2**40) - 3]),
    ]
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
        helper.make_node("Transpose", ["x"], ["t_default"]),
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("MatMul", ["x", "w"], ["mm"]),
        helper.make_node("Cast", ["big"], ["cast_i64"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["x"], ["cast_f64"], to=TensorProto.DOUBLE),
        helper.make_node("Identity", ["x"], ["same"]),
    ]
    outs = [("t", F), ("t_default", F), ("r", F), ("mm", F), ("cast_i64", F)]
    outs += [("cast_f64", TensorProto.DOUBLE), ("same", F)]
    data = graph_bytes(nodes, [("x", F, ["b", 3, 6])], outs, inits, opset=14)
    x = np.random.default_rng(2).normal(size=(1, 3, 6)).astype(np.float32)
    same(data, {"x": x})


@pytest.mark.parametrize(
    ("node", "opset"),
    [
        (helper.make_node("Tanh", ["x"], ["y"]), 17),  # not in the engine
        (helper.make_node("Mul", ["x", "x"], ["y"]), 6),  # before numpy broadcasting
        (helper.make_node("ReduceMean", ["x"], ["y"], noop_with_empty_axes=1), 18),
        (helper.make_node("Relu", ["x"], ["y"]), 23),  # an opset newer than the engine
        (helper.make_node("Reshape", ["x", "x"], ["y"]), 17),  # shape not a constant
    ],
    ids=["unknown-op", "old-opset", "noop-axes", "new-opset", "dynamic-shape"],
)
def test_graphs_outside_the_engine_are_refused_at_load(node: Any, opset: int) -> None:
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", F, None)],
        [helper.make_tensor_value_info("y", F, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    with pytest.raises(NotForNumpy):
        load_small(model.SerializeToString())


@pytest.mark.parametrize(
    ("nodes", "opset"),
    [
        (
            [
                helper.make_node("Relu", ["x"], ["h"], name="n"),
                helper.make_node("Relu", ["h"], ["y"], name="n"),
            ],
            17,
        ),
        ([helper.make_node("Cast", ["x"], ["y"], to=F, saturate=1)], 17),
        ([helper.make_node("Relu", ["x"], ["y"], alpha=1.0)], 17),
        ([helper.make_node("Reshape", ["x", "s"], ["y"], allowzero=0)], 13),
        ([helper.make_node("Relu", ["x"], ["h"]), helper.make_node("Relu", ["x"], ["h"])], 17),
    ],
    ids=[
        "same-node-name",
        "saturate-before-19",
        "unknown-attr",
        "allowzero-before-14",
        "output-twice",
    ],
)
def test_what_onnxruntime_refuses_the_engine_refuses(nodes: list[Any], opset: int) -> None:
    shape = helper.make_tensor("s", TensorProto.INT64, [1], [2])
    data = graph_bytes(nodes, [("x", F, [2])], [("y", F)], [shape], opset=opset)
    with pytest.raises(Exception, match="ONNXRuntimeError"):
        session(data)
    with pytest.raises(NotForNumpy):
        load_small(data)


def test_clip_with_min_above_max_gives_max() -> None:
    inits = [helper.make_tensor("lo", F, [], [1.0]), helper.make_tensor("hi", F, [], [-1.0])]
    node = helper.make_node("Clip", ["x", "lo", "hi"], ["y"])
    data = graph_bytes([node], [("x", F, None)], [("y", F)], inits, opset=13)
    same(data, {"x": np.array([-3.0, 0.0, 0.5, 3.0, np.nan], np.float32)})
