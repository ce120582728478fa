"""The warning for onnxruntime models whose u8 x s8 sums may saturate on the CPU.

The graphs are real (onnx.helper) and the CPU is a parameter: its flags and
machine, as :func:`edge_agent.detect.u8s8_risk.this_cpu` would read them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge_agent.detect.card import CARD_KEY
from edge_agent.detect.engines import onnxruntime_warning
from edge_agent.detect.model import load_model
from edge_agent.detect.u8s8_risk import cpu_flags, may_saturate, this_cpu, u8s8_nodes
from tests.detect.test_model import make_card
from tests.detect.test_onnx_small import session
from tests.detect.tiny import SIGNALS

F, U8, S8 = TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT8
EPYC = (frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"}), "x86_64")  # this session's CI
SKYLAKE_X = (frozenset({"avx2", "avx512f", "avx512bw"}), "x86_64")  # AVX-512, no VNNI
CASCADE_LAKE = (frozenset({"avx2", "avx512f", "avx512_vnni"}), "x86_64")
ALDER_LAKE = (frozenset({"avx2", "avx_vnni"}), "x86_64")
PI = (frozenset({"fp", "asimd"}), "aarch64")


def quantised_model(
    path: Path, weight_type: int = S8, extra: tuple[Any, ...] = (), op: str = "MatMulInteger"
) -> Path:
    """window [b, 4, 3] -> mean over time -> dynamic u8 x weight_type matmul -> error [b, 3].

    What ``quantize_dynamic`` writes for the shipped models; ``extra`` nodes map
    ``error0`` to ``error`` (Identity by default).
    """
    w = np.array([[60, -128, 5], [127, 90, -70], [-3, 127, 100]])
    if weight_type == U8:
        w = w + 128
    inits = [
        helper.make_tensor("w", weight_type, [3, 3], w.flatten().tolist()),
        helper.make_tensor("w_zero", weight_type, [], [128 if weight_type == U8 else 0]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["window", "axes"], ["mean"], keepdims=0),
        helper.make_node("DynamicQuantizeLinear", ["mean"], ["q", "q_scale", "q_zero"]),
        helper.make_node(op, ["q", "w", "q_zero", "w_zero"], ["acc"], name="ae"),
        helper.make_node("Cast", ["acc"], ["accf"], to=F),
        helper.make_node("Mul", ["accf", "q_scale"], ["error0"]),
        *(extra or (helper.make_node("Identity", ["error0"], ["error"]),)),
    ]
    graph = helper.make_graph(
        nodes,
        "q",
        [helper.make_tensor_value_info("window", F, ["batch", 4, 3])],
        [helper.make_tensor_value_info("error", F, ["batch", 3])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    helper.set_model_props(model, {CARD_KEY: make_card().to_json()})
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    ("cpu", "warned"),
    [(EPYC, True), (SKYLAKE_X, True), (CASCADE_LAKE, False), (ALDER_LAKE, False), (PI, False)],
    ids=["avx2", "avx512-no-vnni", "avx512-vnni", "avx-vnni", "arm"],
)
def test_u8_by_s8_weights_warn_on_x86_without_vnni(
    tmp_path: Path, cpu: tuple[frozenset[str], str], warned: bool
) -> None:
    path = quantised_model(tmp_path / "pump.onnx")
    warning = onnxruntime_warning(path, cpu)
    assert (warning is not None) == warned
    if warning:
        assert warning.startswith("pump.onnx: ")
        assert "MatMulInteger 'ae'" in warning and "saturate" in warning
        assert "set engine: auto (the numpy engine runs this graph exactly)" in warning


def test_a_graph_the_numpy_engine_refuses_is_told_to_requantise(tmp_path: Path) -> None:
    tanh = (helper.make_node("Tanh", ["error0"], ["error"]),)  # Tanh: not in the numpy engine
    warning = onnxruntime_warning(quantised_model(tmp_path / "t.onnx", extra=tanh), EPYC)
    assert warning is not None
    assert "reduce_range=True" in warning and "engine: auto" not in warning


def test_exact_kernels_do_not_warn(tmp_path: Path) -> None:
    u8u8 = quantised_model(tmp_path / "u8.onnx", weight_type=U8)
    assert onnxruntime_warning(u8u8, EPYC) is None
    fp32 = tmp_path / "fp32.onnx"
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    w = helper.make_tensor("w", F, [3, 3], [0.5] * 9)
    x, y = (helper.make_tensor_value_info(n, F, [1, 3]) for n in "xy")
    onnx.save(helper.make_model(helper.make_graph(nodes, "f", [x], [y], [w])), fp32)
    assert onnxruntime_warning(fp32, EPYC) is None


def test_other_integer_ops_are_found() -> None:
    nodes = [
        helper.make_node("QLinearMatMul", ["a", "sa", "za", "w", "sw", "zw", "sy", "zy"], ["y"]),
        helper.make_node("ConvInteger", ["a4", "k"], ["c"], name="conv"),
    ]
    inits = [
        helper.make_tensor("w", S8, [2, 2], [1, 2, 3, 4]),
        helper.make_tensor("k", S8, [1, 1, 1, 1], [3]),
    ]
    inputs = [helper.make_tensor_value_info("a", U8, [2, 2])]
    inputs += [helper.make_tensor_value_info("a4", U8, [1, 1, 2, 2])]
    graph = helper.make_graph(nodes, "g", inputs, [], inits)
    found = u8s8_nodes(helper.make_model(graph).SerializeToString())
    assert found == ["QLinearMatMul 'y'", "ConvInteger 'conv'"]
    assert u8s8_nodes(b"\x08\x07 not a model") == []


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx avx2 fma\n\n"
        "processor\t: 1\nflags\t\t: fpu avx avx2 fma\n"
    )
    assert cpu_flags(cpuinfo) == frozenset({"fpu", "avx", "avx2", "fma"})
    assert may_saturate(cpu_flags(cpuinfo), "x86_64")
    assert cpu_flags(tmp_path / "missing") == frozenset()
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd\n")  # ARM names them Features
    assert cpu_flags(cpuinfo) == frozenset()


def test_loading_in_onnxruntime_logs_one_warning_on_this_cpu(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On this machine's CPU: one WARNING where it may saturate, none where it cannot;
    none with ``engine: auto``, where the numpy engine runs the graph."""
    path = quantised_model(tmp_path / "pump.onnx")
    with caplog.at_level(logging.WARNING):
        assert load_model(path, engine="auto").backend == "numpy"
        assert not caplog.records
        assert load_model(path, engine="onnxruntime").backend == "onnxruntime"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = onnxruntime_warning(path)
    assert warnings == ([f"model {expected}"] if may_saturate(*this_cpu()) else [])


def test_the_agents_start_logs_one_warning_on_a_cpu_without_vnni(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run``'s loader (the detector of the config, as ``check-config`` loads it): the
    model's WARNING once, on a CPU of the test's choice."""
    from edge_agent import preflight
    from edge_agent.config import load_config
    from edge_agent.detect import u8s8_risk

    monkeypatch.setattr(u8s8_risk, "this_cpu", lambda: EPYC)
    path = quantised_model(tmp_path / "pump.onnx")
    config = tmp_path / "agent.yaml"
    config.write_text(
        "detect:\n  assets:\n    - name: pump\n      model: pump.onnx\n"
        f"      engine: onnxruntime\n      signals: [{', '.join(SIGNALS)}]\n"
    )
    with caplog.at_level(logging.WARNING):
        preflight.load_detector(load_config(config))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"model {onnxruntime_warning(path, EPYC)}"]


def test_onnxruntime_u8_by_s8_is_exact_exactly_where_no_warning_is_given(tmp_path: Path) -> None:
    """The premise of the warning, on this machine: onnxruntime saturates 255 * 127 * 2
    (a pair sum above 2**15 - 1) where :func:`may_saturate` says so, and computes it
    exactly where it says not. Skipped on CPUs without AVX2 (other kernels)."""
    flags, machine = this_cpu()
    if machine.lower() not in ("x86_64", "amd64") or "avx2" not in flags:
        pytest.skip("onnxruntime's AVX2/AVX-512 kernels only")
    node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
    w = helper.make_tensor("w", S8, [64, 2], [127] * 128)
    a = helper.make_tensor_value_info("a", U8, [1, 64])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [1, 2])
    model = helper.make_model(
        helper.make_graph([node], "g", [a], [y], [w]), opset_imports=[helper.make_opsetid("", 10)]
    )
    model.ir_version = 8
    result = session(model.SerializeToString()).run(["y"], {"a": np.full((1, 64), 255, np.uint8)})
    exact = 64 * 255 * 127
    assert (result[0] != exact).all() == may_saturate(flags, machine), result
