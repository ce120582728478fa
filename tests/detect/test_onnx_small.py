"""The numpy engine against two referees: shipped models, single operators, damaged files.

Every comparison runs the same graph through :func:`load_small`, through onnx's
reference evaluator and through an onnxruntime session (see
:mod:`tests.detect.referees`: where onnxruntime's u8 x s8 kernel saturates, that
is, x86-64 without VNNI, onnxruntime gets the graph with its s8 weights stored as
u8, equal by the ONNX definition, which it computes exactly). Batch-1 windows
(what the detector scores) equal the reference evaluator's bit for bit, and
onnxruntime's bit for bit except in graphs with a float ``MatMul``: numpy's BLAS
and onnxruntime's MLAS may sum it in another order or with FMA, so those agree
within 1e-6 of the window's largest output (bit for bit on some CPUs, 4e-7 on an
AMD EPYC with AVX2). Larger batches may differ in the last bits, because
onnxruntime sums a middle axis in an order of its SIMD kernel (within 2e-6).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edge_agent.detect.model import load_model
from edge_agent.detect.onnx_small import NotForNumpy, OpError, SmallGraph, load_small
from edge_agent.errors import ModelError
from tests.detect.referees import for_onnxruntime, reference

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [
    ROOT / "models" / "skab_pump.onnx",
    ROOT / "models" / "skab_pump.fp32.onnx",
    ROOT / "models" / "cmapss_fd001_rul.onnx",
    ROOT / "edge_agent" / "sim" / "demo_pump.onnx",
]
IDS = [p.name for p in SHIPPED]


def session(data: bytes) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def both(data: bytes) -> tuple[SmallGraph, Any]:
    """The numpy engine and an onnxruntime session that computes the same graph exactly."""
    return load_small(data), session(for_onnxruntime(data))


def has_float_matmul(data: bytes) -> bool:
    return any(node.op_type == "MatMul" for node in onnx.load_from_string(data).graph.node)


def outputs(graph: SmallGraph, sess: Any, feeds: dict[str, np.ndarray]) -> tuple[list[Any], Any]:
    names = [o.name for o in sess.get_outputs()]
    return graph.run(names, feeds), sess.run(names, feeds)


def window_shape(sess: Any) -> list[int]:
    return [int(d) for d in sess.get_inputs()[0].shape[1:]]


def random_windows(rng: np.random.Generator, batch: int, shape: list[int]) -> np.ndarray:
    scale = 10.0 ** rng.uniform(-4, 4)
    offset = rng.normal() * scale * rng.choice([0.0, 1.0, 100.0])
    windows: np.ndarray = (rng.normal(size=(batch, *shape)) * scale + offset).astype(np.float32)
    return windows


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_shipped_model_equals_the_onnx_reference_at_batch_one(path: Path) -> None:
    data = path.read_bytes()
    graph, referee = load_small(data), reference(data)
    rng = np.random.default_rng(16)
    shape = window_shape(graph)
    for _ in range(400):
        x = random_windows(rng, 1, shape)
        names = [graph.get_outputs()[0].name]
        mine, theirs = graph.run(names, {"window": x}), referee.run(names, {"window": x})
        assert mine[0].dtype == theirs[0].dtype
        assert np.array_equal(mine[0], theirs[0]), x


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_shipped_model_matches_onnxruntime_at_batch_one(path: Path) -> None:
    data = path.read_bytes()
    graph, sess = both(data)
    rng = np.random.default_rng(16)
    shape = window_shape(sess)
    tolerance = 1e-6 if has_float_matmul(data) else 0.0  # the module docstring says why
    for _ in range(400):
        x = random_windows(rng, 1, shape)
        mine, theirs = outputs(graph, sess, {"window": x})
        assert mine[0].dtype == theirs[0].dtype
        scale = float(np.abs(theirs[0]).max())
        assert np.all(np.abs(mine[0] - theirs[0]) <= tolerance * scale), x


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_shipped_model_matches_in_batches(path: Path) -> None:
    graph, sess = both(path.read_bytes())
    rng = np.random.default_rng(61)
    shape = window_shape(sess)
    for _ in range(200):
        x = random_windows(rng, int(rng.integers(2, 33)), shape)
        mine, theirs = outputs(graph, sess, {"window": x})
        scale = np.abs(theirs[0]).max(axis=1, keepdims=True)  # per window
        assert np.all(np.abs(mine[0] - theirs[0]) <= 2e-6 * scale)
        np.testing.assert_allclose(mine[0].mean(axis=1), theirs[0].mean(axis=1), rtol=2e-6)


def adversarial(shape: list[int]) -> list[np.ndarray]:
    """Windows an operator's edge cases live in (one window each, and a batch of them)."""
    full = [1, *shape]
    ramp = np.linspace(-1, 1, int(np.prod(full))).reshape(full)
    cases = [
        np.zeros(full),
        np.full(full, 3.5),
        np.full(full, -2.0),
        np.full(full, 1e-42),  # subnormal: the quantisation scale underflows to 0
        np.full(full, -1e-42),
        ramp * 1e30,
        ramp * 3e38,  # sums overflow to inf
        np.full(full, 3.4e38),
        ramp * 1e-30,
        np.where(ramp > 0, np.float32(np.inf), 0.0),
        np.where(ramp > 0, -np.inf, 1.0),
        np.where(ramp > 0.5, np.nan, ramp),
        -np.abs(ramp) - 1,
    ]
    windows = [c.astype(np.float32) for c in cases]
    return [*windows, np.concatenate(windows[:9])]


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_shipped_model_on_adversarial_windows_matches_or_refuses(path: Path) -> None:
    graph, sess = both(path.read_bytes())
    for x in adversarial(window_shape(sess)):
        names = [sess.get_outputs()[0].name]
        theirs = sess.run(names, {"window": x})[0]
        try:
            mine = graph.run(names, {"window": x})[0]
        except OpError as exc:  # inf/NaN before quantisation: onnxruntime's answer is arbitrary
            assert "is not finite" in str(exc)
            assert not np.isfinite(x).all() or np.abs(x).max() > 1e29
            continue
        np.testing.assert_allclose(mine, theirs, rtol=2e-6, atol=0, equal_nan=True)


@pytest.mark.parametrize("path", SHIPPED, ids=IDS)
def test_shipped_model_loads_with_the_numpy_engine(path: Path) -> None:
    assert load_model_or_prognostic(path) == "numpy"


def load_model_or_prognostic(path: Path) -> str:
    from edge_agent.detect.prognostic import load_prognostic, model_kind

    if model_kind(path) == "prognostic":
        return load_prognostic(path).backend
    return load_model(path).backend


def test_loading_the_shipped_models_does_not_import_onnxruntime() -> None:
    code = (
        "import sys\n"
        "from edge_agent.detect.model import load_model\n"
        "from edge_agent.detect.prognostic import load_prognostic, model_kind\n"
        f"paths = {[str(p) for p in SHIPPED]!r}\n"
        "for p in paths:\n"
        "    m = load_prognostic(p) if model_kind(__import__('pathlib').Path(p)) == 'prognostic'"
        " else load_model(p)\n"
        "    assert m.backend == 'numpy', (p, m.backend)\n"
        "print(sorted(k for k in sys.modules if k.startswith('onnx')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def tanh_model(path: Path) -> Path:
    """A graph with one op the numpy engine lacks (Tanh), with a card embedded."""
    from edge_agent.detect.card import CARD_KEY
    from tests.detect.test_model import make_card

    nodes = [
        helper.make_node("Tanh", ["window"], ["t"]),
        helper.make_node("ReduceMean", ["t"], ["error"], axes=[1], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tanh",
        [helper.make_tensor_value_info("window", TensorProto.FLOAT, ["batch", 4, 3])],
        [helper.make_tensor_value_info("error", TensorProto.FLOAT, ["batch", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {CARD_KEY: make_card().to_json()})
    onnx.save(model, path)
    return path


def test_a_graph_with_an_unsupported_op_falls_back_to_onnxruntime(tmp_path: Path) -> None:
    model = load_model(tanh_model(tmp_path / "tanh.onnx"))
    assert model.backend == "onnxruntime"
    x = np.random.default_rng(4).normal(size=(2, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(model.errors(x), np.tanh(x).mean(axis=1), rtol=1e-5)


def outcome(path: Path, engine: str) -> str | np.ndarray:
    """The error message of loading ``path``, or its errors on a fixed window."""
    try:
        model = load_model(path, engine=engine)
        window = np.linspace(-2, 2, model.card.window * model.n_signals, dtype=np.float32)
        return model.errors(window.reshape(1, model.card.window, model.n_signals))
    except ModelError as exc:
        return str(exc)


def test_truncated_files_fail_or_load_exactly_as_with_onnxruntime(tmp_path: Path) -> None:
    data = SHIPPED[3].read_bytes()  # the demo model, its card embedded
    path = tmp_path / "demo.onnx"
    for size in range(0, len(data), 9):
        path.write_bytes(data[:size])
        mine, theirs = outcome(path, "auto"), outcome(path, "onnxruntime")
        if isinstance(theirs, str):
            assert mine == theirs
        else:
            assert np.array_equal(mine, theirs)


def test_damaged_files_fail_or_load_exactly_as_with_onnxruntime(tmp_path: Path) -> None:
    """Random byte changes: the numpy engine refuses (and leaves the verdict to
    onnxruntime) every file onnxruntime refuses, and agrees on every file it runs:
    with onnxruntime computing the same graph exactly (:func:`both` says how), bit
    for bit, or within 1e-6 of the largest error where a float MatMul is summed.
    """
    rng = np.random.default_rng(12)
    path = tmp_path / "m.onnx"
    both_loaded = 0
    for trial in range(400):
        source = SHIPPED[trial % len(SHIPPED)]
        data = bytearray(source.read_bytes())
        for at in rng.integers(0, len(data), size=int(rng.integers(1, 4))):
            data[at] = int(rng.integers(0, 256))
        path.write_bytes(bytes(data))
        card = source.with_name(f"{source.stem}.card.json")
        path.with_name("m.card.json").write_bytes(card.read_bytes() if card.exists() else b"")
        if not card.exists():
            path.with_name("m.card.json").unlink()
        mine, theirs = outcome(path, "auto"), outcome(path, "onnxruntime")
        if isinstance(theirs, str) or isinstance(mine, str):
            assert mine == theirs
            continue
        both_loaded += 1
        path.write_bytes(for_onnxruntime(bytes(data)))
        exact = outcome(path, "onnxruntime")
        assert not isinstance(exact, str), exact
        tolerance = 1e-6 if has_float_matmul(bytes(data)) else 0.0
        finite = np.abs(exact[np.isfinite(exact)])
        scale = float(finite.max()) if finite.size else 0.0
        np.testing.assert_allclose(mine, exact, rtol=0, atol=tolerance * scale, equal_nan=True)
    assert both_loaded > 10  # changes inside weights or names still load


def test_garbage_is_not_for_numpy() -> None:
    for garbage in (b"", b"\x00" * 64, b"\x08\x07garbage, not a protobuf" * 10, bytes(range(256))):
        with pytest.raises(NotForNumpy):
            load_small(garbage)
