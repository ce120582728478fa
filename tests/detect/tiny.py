"""Tiny ONNX models and sample builders for detection tests (Windows re-exported)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from edge_agent.detect.card import CARD_KEY, ModelCard
from edge_agent.twin.windows import Windows
from edge_agent.types import Quality, Sample

__all__ = ["SIGNALS", "Windows", "card", "good", "rows", "square_model"]

SIGNALS = ("pump.current", "pump.temp", "pump.vib")


def card(**changes: object) -> ModelCard:
    """A card for 3 signals, window 4, step 1 s, unit normalisation, threshold 1."""
    base = ModelCard(
        name="tiny",
        signals=SIGNALS,
        window=4,
        step=1.0,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        threshold=1.0,
    )
    return base.replace(**changes)


def square_model(path: Path, model_card: ModelCard | None = None) -> Path:
    """error = mean over time of x**2 (a 'predict zero' autoencoder): causal and exact."""
    c = model_card or card()
    n = len(c.signals)
    nodes = [
        helper.make_node("Mul", ["window", "window"], ["sq"]),
        helper.make_node("ReduceMean", ["sq", "axes"], ["error"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("window", TensorProto.FLOAT, ["batch", c.window, n])],
        [helper.make_tensor_value_info("error", TensorProto.FLOAT, ["batch", n])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    helper.set_model_props(model, {CARD_KEY: c.to_json()})
    onnx.save(model, path)
    return path


def good(signal: str, ts: float, value: float) -> Sample:
    """A GOOD sample."""
    return Sample(signal, ts, value, Quality.GOOD)


def rows(ts: float, values: Iterable[float], signals: Iterable[str] = SIGNALS) -> list[Sample]:
    """One GOOD sample per signal at ``ts``."""
    return [good(s, ts, v) for s, v in zip(signals, values, strict=True)]
