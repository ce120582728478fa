"""The numpy engine: small ONNX graphs evaluated in numpy, without onnxruntime.

The shipped models are a few linear steps over a handful of weights, and
onnxruntime costs about 20 MB to import and 9 MB per session for them. A graph
whose every node is one of :data:`~edge_agent.detect.onnx_ops.OPS`, in the
default domain at opset 7-22, with tensor types and attributes those builders
implement exactly, runs here; anything else (or a malformed file) raises
:class:`NotForNumpy` at load and the caller uses onnxruntime.

:class:`SmallGraph` answers the part of ``onnxruntime.InferenceSession`` the
model loaders use (``get_inputs``, ``get_outputs``, ``run``), so the same checks
apply to both engines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.detect.onnx_ops import OPS, Ctx, OpError, Step
from edge_agent.detect.onnx_proto import NotForNumpy
from edge_agent.detect.onnx_read import DTYPES, Graph, Model, ValueInfo, read_model

__all__ = ["NotForNumpy", "OpError", "SmallGraph", "load_small", "metadata", "open_small"]

log = logging.getLogger(__name__)

OPSETS = range(7, 23)
IR_VERSIONS = range(3, 15)  # onnx 1.23 writes IR 14
DOMAINS = ("", "ai.onnx")
# ONNX element type -> the name onnxruntime gives it in "tensor(...)".
TYPE_NAMES = {
    1: "float",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "string",
    9: "bool",
    10: "float16",
    11: "double",
    12: "uint32",
    13: "uint64",
    16: "bfloat16",
}


@dataclass(frozen=True)
class Arg:
    """A graph input or output as onnxruntime describes one (``NodeArg``)."""

    name: str
    type: str
    shape: list[int | str | None]


def _arg(info: ValueInfo) -> Arg:
    name = TYPE_NAMES.get(info.elem_type or 0, str(info.elem_type))
    return Arg(info.name, f"tensor({name})", list(info.dims or ()))


@dataclass(frozen=True)
class _Node:
    step: Step
    inputs: tuple[str | None, ...]
    outputs: tuple[str, ...]


class SmallGraph:
    """A compiled graph: run it with ``run([output names], {input name: array})``."""

    def __init__(
        self, nodes: list[_Node], consts: dict[str, np.ndarray], model: Model, graph: Graph
    ) -> None:
        self._plan = [(n.step, n.inputs, n.outputs) for n in nodes]
        self._consts = consts
        self._inputs = [_arg(i) for i in graph.inputs]
        self._outputs = [_arg(o) for o in graph.outputs]
        self._dtypes = {i.name: DTYPES[i.elem_type or 0] for i in graph.inputs}
        self.metadata = dict(model.metadata)

    def get_inputs(self) -> list[Arg]:
        """The graph inputs (name, ``tensor(type)``, dims)."""
        return list(self._inputs)

    def get_outputs(self) -> list[Arg]:
        """The graph outputs."""
        return list(self._outputs)

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs ``names`` for the inputs ``feeds``.

        Raises:
            OpError: a missing or mis-shaped input, or a value the engine refuses.
        """
        env = self.evaluate({arg.name: self._feed(arg, feeds) for arg in self._inputs})
        return [self._own(env[name], name) for name in names]

    def _own(self, value: Any, name: str) -> np.ndarray:
        """An output the caller may keep and change: never a view of a weight or an input."""
        out = np.asarray(value)
        return out.copy() if name in self._consts or not out.flags.owndata else out

    def evaluate(self, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        """Every value of the graph for checked ``feeds``, by name."""
        env: dict[Any, Any] = {None: None, **self._consts, **feeds}  # None: an absent input
        get = env.__getitem__
        with np.errstate(all="ignore"):  # overflow to inf is a value, as in onnxruntime
            for step, inputs, outputs in self._plan:
                values = step(*map(get, inputs))
                if len(outputs) == 1:
                    env[outputs[0]] = values[0]
                else:
                    env.update(zip(outputs, values, strict=True))
        return env

    def _feed(self, arg: Arg, feeds: dict[str, np.ndarray]) -> np.ndarray:
        if arg.name not in feeds:
            raise OpError(f"input {arg.name!r} not given")
        value = feeds[arg.name]
        if not isinstance(value, np.ndarray) or value.dtype != self._dtypes[arg.name]:
            raise OpError(f"input {arg.name!r} must be {arg.type}")
        dims = arg.shape
        if dims and value.ndim != len(dims):
            raise OpError(f"input {arg.name!r} has shape {list(value.shape)}, expected {dims}")
        for d, v in zip(dims, value.shape, strict=False):
            if d != v and isinstance(d, int):
                raise OpError(f"input {arg.name!r} has shape {list(value.shape)}, expected {dims}")
        return value


def open_small(path: Path) -> SmallGraph | None:
    """The numpy engine's graph of ``path``, or None (logged once) when it does not fit."""
    try:
        return load_small(path.read_bytes())
    except (NotForNumpy, OSError) as exc:
        log.info("model %s: not for the numpy engine (%s), using onnxruntime", path.name, exc)
        return None


def metadata(path: Path) -> dict[str, str]:
    """An ONNX file's metadata_props (the embedded card), without compiling the graph.

    Raises:
        NotForNumpy: the file is not one this reader reads.
        OSError: it cannot be read.
    """
    return read_model(path.read_bytes()).metadata


def load_small(data: bytes) -> SmallGraph:
    """Read and compile an ONNX file's bytes.

    Raises:
        NotForNumpy: malformed, or anything the numpy engine does not run exactly
            (the message names it).
    """
    return compile_model(read_model(data))


def compile_model(model: Model) -> SmallGraph:
    """Check every node against the builders and bind them in file order.

    Raises:
        NotForNumpy: as for :func:`load_small`.
    """
    opset = _opset(model)
    graph = model.graph
    if graph is None or not graph.outputs:
        raise NotForNumpy("no graph or no outputs")
    dtypes = _graph_inputs(graph)
    names = [n.name for n in graph.nodes if n.name]
    if len(set(names)) != len(names):
        raise NotForNumpy("two nodes with the same name")
    nodes = [_bind(node, opset, dtypes, graph.initializers) for node in graph.nodes]
    for out in graph.outputs:
        if out.name not in dtypes:
            raise NotForNumpy(f"output {out.name!r} is not computed")
    small = SmallGraph(nodes, dict(graph.initializers), model, graph)
    _probe(small, graph)
    return small


def _probe(small: SmallGraph, graph: Graph) -> None:
    """Run a zero window (symbolic dims 1) and compare it with every declared type and shape.

    onnxruntime infers shapes at load and refuses a graph whose shapes do not fit;
    a dry run finds the same faults, so such a graph goes to onnxruntime to be refused.
    """
    feeds = {}
    for info in graph.inputs:
        if info.dims is None or info.elem_type is None:
            return  # no shape to infer from, in onnxruntime either
        dims = [d if isinstance(d, int) and d >= 0 else 1 for d in info.dims]
        feeds[info.name] = np.zeros(dims, DTYPES[info.elem_type])
    try:
        env = small.evaluate(feeds)
    except Exception as exc:  # any numpy fault on a zero window: not a graph for numpy
        raise NotForNumpy(f"a zero window does not run: {exc}") from exc
    for info in (*graph.outputs, *graph.value_info):
        value = env.get(info.name)
        if value is not None and not _fits(info, np.asarray(value)):
            raise NotForNumpy(f"{info.name!r} is declared {_arg(info)}, computed {value.shape}")


def _fits(info: ValueInfo, value: np.ndarray) -> bool:
    if info.elem_type not in DTYPES or DTYPES[info.elem_type] != value.dtype:
        return False
    if info.dims is None:
        return True
    return len(info.dims) == value.ndim and all(
        not isinstance(d, int) or d == v for d, v in zip(info.dims, value.shape, strict=True)
    )


def _opset(model: Model) -> int:
    if model.ir_version not in IR_VERSIONS:
        raise NotForNumpy(f"IR version {model.ir_version}")
    versions = {model.opsets[d] for d in DOMAINS if d in model.opsets}
    if len(versions) != 1 or (opset := versions.pop()) not in OPSETS:
        raise NotForNumpy(f"default opset {sorted(versions) or 'missing'}")
    return opset


def _graph_inputs(graph: Graph) -> dict[str, np.dtype[Any]]:
    """Known values and their dtypes: initializers, then the graph inputs."""
    dtypes = {name: value.dtype for name, value in graph.initializers.items()}
    for info in graph.inputs:
        if info.name in dtypes or not info.name:
            raise NotForNumpy(f"input {info.name!r} is also an initializer, or unnamed")
        if info.elem_type not in DTYPES:
            raise NotForNumpy(f"input {info.name!r} is not a tensor of a supported type")
        dtypes[info.name] = DTYPES[info.elem_type]
    return dtypes


def _bind(
    node: Any, opset: int, dtypes: dict[str, np.dtype[Any]], consts: dict[str, np.ndarray]
) -> _Node:
    """One node's step; its outputs' dtypes are added to ``dtypes``."""
    build = OPS.get(node.op_type)
    if build is None or node.domain not in DOMAINS:
        raise NotForNumpy(f"op {node.domain + '.' if node.domain else ''}{node.op_type}")
    inputs = tuple(name or None for name in node.inputs)
    missing = [n for n in inputs if n is not None and n not in dtypes]
    if missing:
        raise NotForNumpy(f"{node.op_type}: input {missing[0]!r} not computed before it")
    ctx = Ctx(
        opset,
        [None if n is None else dtypes[n] for n in inputs],
        [None if n is None else consts.get(n) for n in inputs],
    )
    step, out_types = build(node, ctx)
    if len(node.outputs) != len(out_types) or any(not o for o in node.outputs):
        raise NotForNumpy(f"{node.op_type}: {len(node.outputs)} outputs")
    for name, dtype in zip(node.outputs, out_types, strict=True):
        if name in dtypes:
            raise NotForNumpy(f"{node.op_type}: output {name!r} defined twice")
        dtypes[name] = dtype
    return _Node(step, inputs, tuple(node.outputs))
