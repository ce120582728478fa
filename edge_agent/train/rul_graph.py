"""ONNX export of a trained RUL ensemble, int8 quantisation, and an onnxruntime runner.

The graph takes raw signal values and gives the RUL in cycles::

    window [b, W, n] -Sub(mean)-Mul(1/std)-> z -Transpose-> [b, n, W]
      -MatMul(basis [W, K])-> level, slope ... [b, n, K] -Reshape-Sub-Mul-> [b, K*n]
      -MatMul(W1)-Add-Relu-> [b, M*h] -MatMul(W2 / M)-Add-> [b, 1] -Clip(0, cap)-> rul

The ``M`` ensemble members are one wider network: their first layers side by
side (``W1`` is ``[2n, M*h]``), their output weights stacked and divided by
``M``, so the graph computes exactly the members' mean. Only ``W1`` gets int8
weights (dynamic quantisation: activations quantised per call); the basis (a
mean and a slope, whose small differences are the signal), the output layer
and the clip stay float. The card (``kind`` ``prognostic``) is embedded under
the same metadata key as anomaly cards.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.detect.card import CARD_KEY
from edge_agent.detect.prognostic_card import PrognosticCard
from edge_agent.train.rul_fit import RulModel, basis

OPSET = 17
INPUT, OUTPUT = "window", "rul"
QUANTISED = "hidden_mm"


def merged(model: RulModel) -> dict[str, np.ndarray]:
    """The ensemble as one network: ``w1 [d, M*h]``, ``b1``, ``w2 [M*h, 1]``, ``b2``."""
    ms = model.members
    return {
        "w1": np.concatenate([p["w1"] for p in ms], axis=1),
        "b1": np.concatenate([p["b1"] for p in ms]),
        "w2": np.concatenate([p["w2"] for p in ms], axis=0) / len(ms),
        "b2": np.mean([p["b2"] for p in ms], axis=0),
    }


def _nodes(model: RulModel) -> tuple[list[Any], list[Any]]:
    """Nodes and initialisers of the graph in the module docstring."""
    from onnx import helper, numpy_helper

    net = merged(model)
    consts = {
        "norm_mean": model.norm.mean,
        "norm_inv_std": 1.0 / model.norm.std,
        "basis": basis(model.recipe.window, model.recipe.basis),
        "feat_mean": model.feat.mean,
        "feat_inv_std": 1.0 / model.feat.std,
        "w1": net["w1"],
        "b1": net["b1"],
        "w2": net["w2"],
        "b2": net["b2"],
        "rul_min": np.array(0.0),
        "rul_max": np.array(model.recipe.cap),
    }
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in consts.items()]
    inits.append(numpy_helper.from_array(np.array([0, -1], np.int64), "flat_shape"))
    chain: list[tuple[str, list[str], str, dict[str, Any]]] = [
        ("Sub", [INPUT, "norm_mean"], "centred", {}),
        ("Mul", ["centred", "norm_inv_std"], "z", {}),
        ("Transpose", ["z"], "by_signal", {"perm": [0, 2, 1]}),
        ("MatMul", ["by_signal", "basis"], "summaries", {}),
        ("Reshape", ["summaries", "flat_shape"], "raw_features", {}),
        ("Sub", ["raw_features", "feat_mean"], "centred_features", {}),
        ("Mul", ["centred_features", "feat_inv_std"], "features", {}),
        ("MatMul", ["features", "w1"], QUANTISED, {}),
        ("Add", [QUANTISED, "b1"], "hidden_pre", {}),
        ("Relu", ["hidden_pre"], "hidden", {}),
        ("MatMul", ["hidden", "w2"], "out_mm", {}),
        ("Add", ["out_mm", "b2"], "ensemble", {}),
        ("Clip", ["ensemble", "rul_min", "rul_max"], OUTPUT, {}),
    ]
    nodes = [helper.make_node(op, ins, [out], name=out, **kw) for op, ins, out, kw in chain]
    return nodes, inits


def build(model: RulModel, card: dict[str, Any]) -> bytes:
    """The float32 ONNX model as bytes, with ``card`` in its metadata."""
    import onnx
    from onnx import TensorProto, helper

    nodes, inits = _nodes(model)
    n, w = len(model.recipe.signals), model.recipe.window
    graph = helper.make_graph(
        nodes,
        "rul",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", w, n])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", 1])],
        initializer=inits,
    )
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edge-agent"
    )
    onnx_model.ir_version = 8  # readable by onnxruntime releases back to 1.10
    onnx_model.metadata_props.add(key=CARD_KEY, value=json.dumps(card, indent=2))
    onnx.checker.check_model(onnx_model)
    return bytes(onnx_model.SerializeToString())


def prognostic_card(
    model: RulModel, info: dict[str, Any] | None = None, name: str = "cmapss-fd001-rul"
) -> dict[str, Any]:
    """The card of a ``prognostic`` model (normalisation lives in the graph), as a dict."""
    r = model.recipe
    card = PrognosticCard(
        name=name,
        signals=tuple(r.signals),
        window=r.window,
        step=1.0,
        unit="cycles",
        cap=r.cap,
        info=dict(info or {}),
    )
    return card.to_dict()


def export(
    model: RulModel,
    fp32: Path,
    int8: Path,
    info: dict[str, Any] | None = None,
    name: str = "cmapss-fd001-rul",
) -> None:
    """Write the fp32 model and its dynamic-int8 twin (weights int8, activations per call)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32.write_bytes(build(model, prognostic_card(model, info, name)))
    quantize_dynamic(
        fp32,
        int8,
        weight_type=QuantType.QInt8,
        nodes_to_quantize=[QUANTISED],
        extra_options={"MatMulConstBOnly": True},
    )


class OnnxRul:
    """An exported RUL model in the engine the agent would run it in, on one thread.

    ``engine`` is the asset's key: ``auto`` (the agent's default) runs the graph in
    the numpy engine when it takes it, exact by the ONNX definition, else in
    onnxruntime; ``onnxruntime`` forces that. onnxruntime's u8 x s8 kernels may
    saturate on x86-64 without VNNI (:mod:`edge_agent.detect.u8s8_risk`): an int8
    figure measured through them there is not what the agent computes.
    """

    def __init__(self, path: Path, engine: str = "auto") -> None:
        from edge_agent.detect.engines import open_onnx

        self.session, card, self.engine = open_onnx(path, 1, engine)
        if card is None:
            raise ValueError(f"{path.name}: no model card in the file")
        self.card: dict[str, Any] = json.loads(card)

    def predict(self, raw_windows: np.ndarray) -> np.ndarray:
        """RUL ``[b]`` of raw windows ``[b, W, n]``."""
        x = np.ascontiguousarray(raw_windows, dtype=np.float32)
        return np.asarray(self.session.run([OUTPUT], {INPUT: x})[0][:, 0], dtype=np.float64)

    def latency_us(self, runs: int = 500) -> dict[str, float]:
        """Median and p99 of one-window inference (us) on this machine."""
        shape = (1, self.card["window"], len(self.card["signals"]))
        x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self.session.run([OUTPUT], {INPUT: x})
            times.append(time.perf_counter() - start)
        us = np.array(times[runs // 10 :]) * 1e6
        return {
            "p50_us": round(float(np.median(us)), 1),
            "p99_us": round(float(np.quantile(us, 0.99)), 1),
        }
