"""ONNX graphs for the shipped models, int8 quantisation and a latency probe.

The graph is the model contract made literal::

    window [batch, W, n] --ReduceMean(time)--> [batch, n]      causal smoothing
                         --MatMul(R)---------> [batch, n]      linear-AE residual
                         --Mul(self)---------> squared residual
                         --Mul(1/v)----------> error [batch, n]

With ``time_weights`` the time mean becomes any causal filter over the window
(Transpose, Mul, ReduceSum), e.g. recent mean minus older mean for a change
detector (``bench/nab_eval.py``).

``R = I - P P^T`` is the residual projection of a PCA (linear autoencoder) with
``P`` its principal directions; ``v`` is the per-signal variance of the smoothed
residual on normal data, so each signal's error is in units of its own normal
spread. Only the MatMul is quantised (dynamic int8, weights int8): the squaring
and scaling that make the score stay float, because a static int8 range
calibrated on normal data clips exactly the large errors an anomaly makes.
Needs the ``train`` extra (onnx).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge_agent.detect.card import CARD_KEY, ModelCard

OPSET = 17


def build_model(
    card: ModelCard,
    residual: np.ndarray,
    inv_var: np.ndarray,
    time_weights: np.ndarray | None = None,
) -> bytes:
    """The float32 ONNX model as bytes, with ``card`` in its metadata.

    Args:
        card: the model card (signals, window ...).
        residual: ``[n, n]`` residual projection ``I - P P^T``.
        inv_var: ``[n]`` weights ``1 / v``.
        time_weights: ``[window]`` causal filter over the window instead of the
            plain mean, e.g. recent mean minus older mean for a change detector.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = len(card.signals)
    inits = [
        numpy_helper.from_array(residual.astype(np.float32), "residual_projection"),
        numpy_helper.from_array(inv_var.astype(np.float32).reshape(n), "inv_variance"),
    ]
    if time_weights is None:
        nodes = [helper.make_node("ReduceMean", ["window"], ["smoothed"], axes=[1], keepdims=0)]
    else:
        w = np.asarray(time_weights, np.float32).reshape(1, card.window)
        inits.append(numpy_helper.from_array(w, "time_weights"))
        nodes = [
            helper.make_node("Transpose", ["window"], ["by_signal"], perm=[0, 2, 1]),
            helper.make_node("Mul", ["by_signal", "time_weights"], ["weighted"]),
            helper.make_node("ReduceSum", ["weighted", "axes2"], ["smoothed"], keepdims=0),
        ]
        inits.append(numpy_helper.from_array(np.array([2], np.int64), "axes2"))
    nodes += [
        helper.make_node("MatMul", ["smoothed", "residual_projection"], ["residual"], name="ae"),
        helper.make_node("Mul", ["residual", "residual"], ["squared"], name="square"),
        helper.make_node("Mul", ["squared", "inv_variance"], ["error"], name="scale"),
    ]
    graph = helper.make_graph(
        nodes,
        card.name,
        [helper.make_tensor_value_info("window", TensorProto.FLOAT, ["batch", card.window, n])],
        [helper.make_tensor_value_info("error", TensorProto.FLOAT, ["batch", n])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edge-agent"
    )
    model.ir_version = 8  # readable by onnxruntime releases back to 1.10
    helper.set_model_props(model, {CARD_KEY: card.to_json()})
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def quantise_int8(fp32_path: Path, int8_path: Path) -> None:
    """Dynamic int8 quantisation of the MatMul only (weights int8, activations per call)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        fp32_path,
        int8_path,
        weight_type=QuantType.QInt8,
        nodes_to_quantize=["ae"],
        extra_options={"MatMulConstBOnly": True},
    )


def set_card(path: Path, card: ModelCard) -> None:
    """Rewrite the card in an ONNX file's metadata (after quantisation or calibration)."""
    import onnx
    from onnx import helper

    model = onnx.load(path)
    del model.metadata_props[:]
    helper.set_model_props(model, {CARD_KEY: card.to_json()})
    onnx.save(model, path)


def latency_us(path: Path, window: int, n: int, runs: int = 300) -> dict[str, float]:
    """Median and p99 of one-window inference (us), one thread, this machine."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(1, window, n)).astype(np.float32)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(["error"], {"window": x})
        times.append(time.perf_counter() - start)
    us = np.array(times[runs // 10 :]) * 1e6
    return {
        "p50_us": round(float(np.median(us)), 1),
        "p99_us": round(float(np.quantile(us, 0.99)), 1),
    }
