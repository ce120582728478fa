"""Prognostic models: load, validate, run (raw window in, remaining useful life out).

A prognostic model file (ONNX, or ``.tflite`` with its card beside it) takes one
input ``window`` float32 ``[batch, window, n_signals]`` of **raw** values (its
normalisation is in the graph) and gives one output ``rul`` float32
``[batch, 1]``: the remaining useful life in the card's ``unit``, in
``[0, cap]``. Its card is a :class:`PrognosticCard` (``"kind": "prognostic"``).
Everything is checked at load, as for anomaly models.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.detect.card import CARD_KEY, card_kind, sidecar_text
from edge_agent.detect.engines import (
    check_dims,
    check_model_file,
    embedded_card,
    open_onnx,
    open_tflite,
    tfl_dims,
)
from edge_agent.detect.prognostic_card import KIND, OUTPUT, PrognosticCard
from edge_agent.errors import ModelError

log = logging.getLogger(__name__)

INPUT = "window"


class PrognosticModel:
    """A loaded, validated prognostic model with its card. One caller at a time."""

    def __init__(self, path: Path, card: PrognosticCard, run: Any, backend: str) -> None:
        self.path = path
        self.card = card
        self.backend = backend
        self._run = run

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Remaining life ``[batch]`` of raw windows ``[batch, window, n]`` (or one window).

        Raises:
            ModelError: wrong shape, a NaN/inf input, or a non-finite output.
        """
        x = np.ascontiguousarray(windows, dtype=np.float32)
        if x.ndim == 2:
            x = x[np.newaxis]
        want = (self.card.window, len(self.card.signals))
        if x.ndim != 3 or x.shape[1:] != want:
            raise ModelError(f"{self.path.name}: input {np.shape(windows)}, expected [b, *{want}]")
        if not math.isfinite(float(x.sum(dtype=np.float64))):
            raise ModelError(f"{self.path.name}: input has NaN/inf values")
        try:
            out = np.asarray(self._run(x), dtype=np.float32).reshape(-1)
        except Exception as exc:  # the backend's own exception types, translated once
            raise ModelError(f"{self.path.name}: inference failed: {exc}") from exc
        if out.shape != (x.shape[0],) or not np.isfinite(out).all():
            raise ModelError(f"{self.path.name}: output {OUTPUT!r} is not {x.shape[0]} numbers")
        return out


def model_kind(path: Path) -> str:
    """``anomaly`` or ``prognostic``: the kind its card (beside, else embedded) declares.

    Raises:
        ModelError: the file is missing or not a valid model.
    """
    check_model_file(path)  # before the card's paths are derived from its name
    beside = sidecar_text(path)
    if beside is not None:
        return card_kind(beside[0])
    if path.suffix.lower() == ".onnx" and path.is_file():
        text = embedded_card(path)
        return card_kind(text) if text is not None else "anomaly"
    return "anomaly"


def load_prognostic(path: Path | str, threads: int = 1, engine: str = "auto") -> PrognosticModel:
    """Load and check a prognostic model; one probe window must give a finite RUL.

    ``engine`` is as for :func:`~edge_agent.detect.model.load_model`.

    Raises:
        ModelError: missing or corrupt file, no prognostic card, wrong tensors.
    """
    path = Path(path)
    check_model_file(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        session, text, backend = open_onnx(path, threads, engine)
        beside = sidecar_text(path)
        origin, text = (beside[1], beside[0]) if beside else (f"{path.name} metadata", text)
        if text is None:
            raise ModelError(f"{path.name}: no model card ({CARD_KEY!r} or {path.stem}.card.json)")
        card = PrognosticCard.from_json(text, origin)
        model = PrognosticModel(path, card, _onnx_run(session, card, path.name), backend)
    elif suffix == ".tflite":
        beside = sidecar_text(path)
        if beside is None:
            raise ModelError(f"{path.name}: no model card ({path.stem}.card.json beside it)")
        card = PrognosticCard.from_json(beside[0], beside[1])
        interp = open_tflite(path, threads)
        model = PrognosticModel(path, card, _tflite_run(interp, card, path.name), "litert")
    else:
        raise ModelError(f"{path.name}: unknown model type {suffix!r} (use .onnx or .tflite)")
    _probe(model)
    log.info("%s model %s loaded (%s, window %d)", KIND, path.name, model.backend, card.window)
    return model


def _probe(model: PrognosticModel) -> None:
    window = np.zeros((1, model.card.window, len(model.card.signals)), np.float32)
    model.predict(window)


def _onnx_run(session: Any, card: PrognosticCard, name: str) -> Any:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [i.name for i in inputs] != [INPUT] or OUTPUT not in [o.name for o in outputs]:
        raise ModelError(f"{name}: a prognostic model needs input {INPUT!r} and output {OUTPUT!r}")
    check_dims(inputs[0].shape, [None, card.window, len(card.signals)], f"{name}: input")
    check_dims(next(o for o in outputs if o.name == OUTPUT).shape, [None, 1], f"{name}: output")

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run([OUTPUT], {INPUT: x})[0])

    return run


def _tflite_run(interp: Any, card: PrognosticCard, name: str) -> Any:
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    check_dims(tfl_dims(inp)[1:], [card.window, len(card.signals)], f"{name}: input")
    check_dims(tfl_dims(out)[1:], [1], f"{name}: output")
    state = {"batch": -1}

    def run(x: np.ndarray) -> np.ndarray:
        if x.shape[0] != state["batch"]:
            interp.resize_tensor_input(inp["index"], list(x.shape))
            interp.allocate_tensors()
            state["batch"] = x.shape[0]
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return np.array(interp.get_tensor(out["index"]))

    return run
