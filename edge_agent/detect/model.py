"""Anomaly models: load, validate, run.

A model file (ONNX, or ``.tflite`` with the ``tflite`` extra) takes one input
``window`` float32 ``[batch, window, n_signals]`` (already normalised) and gives
one output ``error`` float32 ``[batch, n_signals]``, the per-signal error of each
window; the score is the mean of ``error`` over signals. Its :class:`ModelCard`
says which signals, window, step, normalisation and threshold it was built for.

Everything is checked at load, so a bad model fails at startup with a
:class:`ModelError` that names the problem, never at the first window.

An ONNX graph made only of the few operators the shipped models use runs in
numpy (:mod:`edge_agent.detect.onnx_small`, engine ``numpy``): onnxruntime is then
never imported, which saves about 28 MB of RSS per process. Any other graph, or
``engine="onnxruntime"``, runs in onnxruntime. The engines are opened in
:mod:`edge_agent.detect.engines`, the only place that imports onnxruntime and LiteRT.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_agent.detect.card import CARD_KEY, ModelCard, read_sidecar
from edge_agent.detect.engines import check_dims, check_model_file, open_onnx, open_tflite, tfl_dims
from edge_agent.errors import ModelError

log = logging.getLogger(__name__)

INPUT = "window"
OUTPUT = "error"


class _Runner(Protocol):
    """One inference backend: float32 [b, w, n] in, float32 [b, n] out."""

    def check(self, card: ModelCard, name: str) -> None: ...

    def run(self, windows: np.ndarray) -> np.ndarray: ...


class AnomalyModel:
    """A loaded, validated model with its card. Not thread-safe: one caller at a time."""

    def __init__(self, path: Path, card: ModelCard, runner: _Runner, backend: str) -> None:
        self.path = path
        self.card = card
        self.backend = backend
        self._runner = runner
        # The card is fixed for this object (with_card makes a new one): convert it once.
        self._mean = np.asarray(card.mean, dtype=np.float32)
        self._std = np.asarray(card.std, dtype=np.float32)

    @property
    def n_signals(self) -> int:
        """Number of input signals."""
        return len(self.card.signals)

    def with_card(self, card: ModelCard) -> AnomalyModel:
        """The same model with another card (e.g. after calibration); checked for fit."""
        _check_expected(card, self.card.signals, self.card.window, str(self.path))
        return AnomalyModel(self.path, card, self._runner, self.backend)

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        """Apply the card's normalisation to raw values ``[..., n_signals]`` (float32)."""
        # dtype=float32 casts the raw values first, as np.asarray(raw, np.float32) would.
        out: np.ndarray = np.subtract(raw, self._mean, dtype=np.float32)
        np.divide(out, self._std, out=out)
        return out

    def errors(self, windows: np.ndarray) -> np.ndarray:
        """Per-signal errors of normalised windows.

        Args:
            windows: ``[batch, window, n_signals]`` or one ``[window, n_signals]``.

        Returns:
            float32 ``[batch, n_signals]``.

        Raises:
            ModelError: wrong shape, or a NaN/inf value (gaps and BAD samples must
                be handled by the caller, never fed to the model as numbers).
        """
        x = self._check_input(windows)
        try:
            out = self._runner.run(x)
        except ModelError:
            raise
        except Exception as exc:  # the backend's own exception types, translated once
            raise ModelError(f"{self.path.name}: inference failed: {exc}") from exc
        if out.shape != (x.shape[0], self.n_signals):
            raise ModelError(
                f"{self.path.name}: output {OUTPUT!r} has shape {out.shape}, "
                f"expected {(x.shape[0], self.n_signals)}"
            )
        return out

    def score(self, windows: np.ndarray) -> np.ndarray:
        """One score per window (``[batch]``): the mean error over signals."""
        return np.asarray(self.errors(windows).mean(axis=1), dtype=np.float32)

    def _check_input(self, windows: np.ndarray) -> np.ndarray:
        x = windows
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            x = np.asarray(windows, dtype=np.float32)
        if x.ndim == 2:
            x = x[np.newaxis]
        expected = (self.card.window, self.n_signals)
        if x.ndim != 3 or x.shape[1:] != expected:
            raise ModelError(
                f"{self.path.name}: input has shape {np.shape(windows)}, "
                f"expected [batch, {expected[0]}, {expected[1]}]"
            )
        # One float64 sum is NaN/inf exactly when some value is (no overflow from
        # float32 inputs), and costs one numpy call instead of two per window.
        if not math.isfinite(float(x.sum(dtype=np.float64))):
            bad = sorted({self.card.signals[i] for i in np.nonzero(~np.isfinite(x))[2]})
            raise ModelError(
                f"{self.path.name}: input has NaN/inf values for {', '.join(bad)}; "
                "gaps and BAD samples must be handled before the model"
            )
        return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def load_model(
    path: Path | str,
    threads: int = 1,
    *,
    signals: Sequence[str] | None = None,
    window: int | None = None,
    card: ModelCard | None = None,
    engine: str = "auto",
) -> AnomalyModel:
    """Load and validate a model.

    Args:
        path: ``.onnx`` (numpy engine or onnxruntime) or ``.tflite`` (ai-edge-litert,
            optional extra).
        threads: intra-op threads of the backend; 1 suits a shared gateway.
        signals: the signals the caller will feed, in order; must equal the card's.
        window: the window length the caller expects; must equal the card's.
        card: use this card instead of the embedded one or the one beside the file.
        engine: ``auto`` (numpy when it runs the graph exactly, else onnxruntime)
            or ``onnxruntime``; ignored for ``.tflite``.

    Raises:
        ModelError: file missing or corrupt, no card, or any mismatch of names,
            shapes, dtypes, signals or window, each named in the message.
    """
    path = Path(path)
    check_model_file(path)
    if threads < 1:
        raise ModelError(f"{path.name}: threads must be >= 1, got {threads}")
    suffix = path.suffix.lower()
    runner: _Runner
    if suffix == ".onnx":
        runner, meta_card, backend = _load_onnx(path, threads, engine)
    elif suffix == ".tflite":
        runner, meta_card, backend = _load_tflite(path, threads)
    else:
        raise ModelError(f"{path.name}: unknown model type {suffix!r} (use .onnx or .tflite)")
    chosen = card or read_sidecar(path) or meta_card
    if chosen is None:
        raise ModelError(
            f"{path.name}: no model card (ONNX metadata {CARD_KEY!r} or {path.stem}.card.json)"
        )
    runner.check(chosen, path.name)
    _check_expected(chosen, signals, window, path.name)
    log.info(
        "model %s loaded (%s, %d signals, window %d)",
        path.name,
        backend,
        len(chosen.signals),
        chosen.window,
    )
    return AnomalyModel(path, chosen, runner, backend)


def _check_expected(
    card: ModelCard, signals: Sequence[str] | None, window: int | None, name: str
) -> None:
    """Compare the card with what the caller will feed."""
    if signals is not None and tuple(signals) != card.signals:
        missing = [s for s in card.signals if s not in signals]
        extra = [s for s in signals if s not in card.signals]
        detail = f"missing {missing}" if missing else ""
        detail += f"{'; ' if detail else ''}unexpected {extra}" if extra else ""
        raise ModelError(
            f"{name}: signals do not match the model card "
            f"({detail or 'same signals, different order'}); card has {list(card.signals)}"
        )
    if window is not None and window != card.window:
        raise ModelError(f"{name}: window {window} configured, model card has {card.window}")


class _OnnxRunner:
    def __init__(self, session: Any) -> None:
        self._session = session

    def check(self, card: ModelCard, name: str) -> None:
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if [i.name for i in inputs] != [INPUT] or OUTPUT not in [o.name for o in outputs]:
            raise ModelError(
                f"{name}: expects input {INPUT!r} and output {OUTPUT!r}, has inputs "
                f"{[i.name for i in inputs]} and outputs {[o.name for o in outputs]}"
            )
        out = next(o for o in outputs if o.name == OUTPUT)
        for arg in (inputs[0], out):
            if arg.type != "tensor(float)":
                raise ModelError(f"{name}: {arg.name!r} is {arg.type}, expected tensor(float)")
        n = len(card.signals)
        check_dims(inputs[0].shape, [None, card.window, n], f"{name}: input {INPUT!r}")
        check_dims(out.shape, [None, n], f"{name}: output {OUTPUT!r}")

    def run(self, windows: np.ndarray) -> np.ndarray:
        result = self._session.run([OUTPUT], {INPUT: windows})[0]
        return np.asarray(result, dtype=np.float32)


def _load_onnx(path: Path, threads: int, engine: str) -> tuple[_OnnxRunner, ModelCard | None, str]:
    session, text, backend = open_onnx(path, threads, engine)
    card = ModelCard.from_json(text, f"{path.name} metadata") if text is not None else None
    return _OnnxRunner(session), card, backend


class _TfliteRunner:
    def __init__(self, interpreter: Any) -> None:
        self._interp = interpreter
        self._batch = -1
        # Tensor indices are fixed for a model: look them up once, not per call.
        self._in = int(interpreter.get_input_details()[0]["index"])
        self._out = int(interpreter.get_output_details()[0]["index"])

    def check(self, card: ModelCard, name: str) -> None:
        inputs = self._interp.get_input_details()
        outputs = self._interp.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"{name}: expects 1 input and 1 output, has {len(inputs)}/{len(outputs)}"
            )
        for det, want in ((inputs[0], INPUT), (outputs[0], OUTPUT)):
            if want not in det["name"]:
                raise ModelError(f"{name}: tensor {det['name']!r} should be named {want!r}")
            if det["dtype"] != np.float32:
                raise ModelError(f"{name}: {det['name']!r} is {det['dtype']}, expected float32")
        n = len(card.signals)
        check_dims(tfl_dims(inputs[0])[1:], [card.window, n], f"{name}: input {INPUT!r}")
        check_dims(tfl_dims(outputs[0])[1:], [n], f"{name}: output {OUTPUT!r}")

    def run(self, windows: np.ndarray) -> np.ndarray:
        if windows.shape[0] != self._batch:
            self._interp.resize_tensor_input(self._in, list(windows.shape))
            self._interp.allocate_tensors()
            self._batch = windows.shape[0]
        self._interp.set_tensor(self._in, windows)
        self._interp.invoke()
        return np.array(self._interp.get_tensor(self._out), dtype=np.float32)


def _load_tflite(path: Path, threads: int) -> tuple[_TfliteRunner, ModelCard | None, str]:
    # TFLite files carry no edge-agent card: it must be beside the file (or passed in).
    return _TfliteRunner(open_tflite(path, threads)), None, "litert"


def calibrate_card(
    model: AnomalyModel, rows: np.ndarray, *, min_rows: int | None = None
) -> ModelCard:
    """Fit normalisation and threshold to one machine's normal history.

    The card's ``calibration`` rule decides the threshold: ``factor`` times the
    ``quantile`` of the scores of every window of ``rows`` after normalisation.

    Args:
        model: the model whose card is recalibrated.
        rows: raw values ``[time, n_signals]`` on the card's step, no NaN.
        min_rows: fewest rows accepted; default two windows.

    Returns:
        A new card with mean, std, threshold and version updated.

    Raises:
        ModelError: too few rows, NaN values or a constant signal.
    """
    card = model.card
    data = np.asarray(rows, dtype=np.float64)
    need = min_rows if min_rows is not None else 2 * card.window
    if (
        data.ndim != 2
        or data.shape[1] != len(card.signals)
        or data.shape[0] < max(need, card.window)
    ):
        raise ModelError(
            f"calibration needs [time >= {max(need, card.window)}, {len(card.signals)}] rows, "
            f"got {list(data.shape)}"
        )
    if not np.isfinite(data).all():
        raise ModelError("calibration rows contain NaN/inf: fill or drop gaps first")
    mean = data.mean(axis=0)
    std = data.std(axis=0)
    floor = np.maximum(np.abs(mean) * 1e-3, 1e-6)
    std = np.maximum(std, floor)  # a flat signal on site must not divide by ~0
    staged = model.with_card(card.replace(mean=tuple(mean.tolist()), std=tuple(std.tolist())))
    scores = staged.score(sliding_windows(staged.normalise(data), card.window))
    rule = {"quantile": 0.99, "factor": 1.5, **card.calibration}
    threshold = float(np.quantile(scores, rule["quantile"]) * rule["factor"])
    return staged.card.replace(threshold=threshold, version=card.version + 1)


def sliding_windows(rows: np.ndarray, window: int) -> np.ndarray:
    """All windows ``[time - window + 1, window, n]`` of ``rows`` ``[time, n]`` (a view)."""
    view = np.lib.stride_tricks.sliding_window_view(rows, window, axis=0)
    return np.ascontiguousarray(view.transpose(0, 2, 1))
