"""The inference engines a model file opens in: numpy, onnxruntime, LiteRT.

Anomaly models (:mod:`edge_agent.detect.model`) and prognostic ones
(:mod:`edge_agent.detect.prognostic`) open their files here. onnxruntime and
LiteRT are imported only inside these functions, so a process whose models all
run in the numpy engine never loads them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_agent.detect.card import CARD_KEY
from edge_agent.errors import ModelError

log = logging.getLogger(__name__)

ENGINES = ("auto", "onnxruntime")


def check_dims(dims: Sequence[Any], want: Sequence[int | None], what: str) -> None:
    """Fixed dims must match ``want``; symbolic/None dims (batch) are accepted."""
    if len(dims) != len(want):
        raise ModelError(f"{what} has rank {len(dims)}, expected {len(want)}")
    for dim, expected in zip(dims, want, strict=True):
        if expected is not None and isinstance(dim, int) and dim > 0 and dim != expected:
            raise ModelError(f"{what} has shape {list(dims)}, expected {list(want)}")


def check_model_file(path: Path) -> None:
    """A ModelError unless ``path`` is a file: "/" (no name) and a name too long included.

    Raises:
        ModelError: ``model file not found`` or ``model file cannot be opened``.
    """
    try:
        found = path.is_file()
    except OSError as exc:  # is_file() answers False for a missing file, raises for a long name
        raise ModelError(f"model file cannot be opened: {path}: {exc.strerror}") from exc
    if not found:
        raise ModelError(f"model file not found: {path}")


def open_onnx(path: Path, threads: int, engine: str = "auto") -> tuple[Any, str | None, str]:
    """A session of ``path``, the card text embedded in it (or None), and its engine name.

    The session is a numpy :class:`~edge_agent.detect.onnx_small.SmallGraph` (engine
    ``numpy``) when ``engine`` is ``auto`` and the graph is one it runs exactly,
    else an onnxruntime ``InferenceSession`` (which also judges a damaged file). An
    onnxruntime model with u8 x s8 integer ops on a CPU where onnxruntime's sums of
    them may saturate is loaded with one WARNING (:mod:`~edge_agent.detect.u8s8_risk`).

    Raises:
        ModelError: onnxruntime cannot load the file, or ``engine`` is unknown.
    """
    if engine not in ENGINES:
        raise ModelError(f"{path.name}: unknown engine {engine!r} (use {' or '.join(ENGINES)})")
    if engine == "auto":
        from edge_agent.detect.onnx_small import open_small

        small = open_small(path)
        if small is not None:
            return small, small.metadata.get(CARD_KEY), "numpy"
    session = _ort_session(path, threads)
    try:  # onnxruntime loads names that are not UTF-8, then fails when they are read
        meta = session.get_modelmeta().custom_metadata_map
        for arg in (*session.get_inputs(), *session.get_outputs()):
            (arg.name, arg.type, arg.shape)  # noqa: B018 - read once to decode
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path.name}: not a valid ONNX model ({exc})") from exc
    warning = onnxruntime_warning(path)
    if warning:
        log.warning("model %s", warning)
    return session, meta.get(CARD_KEY), "onnxruntime"


def onnxruntime_warning(path: Path, cpu: tuple[frozenset[str], str] | None = None) -> str | None:
    """Why onnxruntime's results for ``path`` may be wrong on this CPU (or ``cpu``), if so.

    ``cpu`` is (flags, machine), as :func:`~edge_agent.detect.u8s8_risk.this_cpu`
    gives them; tests pass a CPU of their choice.
    """
    from edge_agent.detect.u8s8_risk import saturation_warning, this_cpu

    flags, machine = cpu if cpu is not None else this_cpu()
    return saturation_warning(path, flags, machine)


def embedded_card(path: Path) -> str | None:
    """The card text in an ONNX file's metadata, read without building any engine.

    Raises:
        ModelError: neither the numpy reader nor onnxruntime can read the file.
    """
    from edge_agent.detect.onnx_small import NotForNumpy, metadata

    try:
        return metadata(path).get(CARD_KEY)
    except (NotForNumpy, OSError):
        return open_onnx(path, 1, "onnxruntime")[1]  # onnxruntime's verdict on the file


def _ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own Exception subclasses
        raise ModelError(f"{path.name}: not a valid ONNX model ({exc})") from exc
    return session


def tfl_dims(detail: dict[str, Any]) -> list[int]:
    return [int(d) for d in detail.get("shape_signature", detail["shape"])]


def open_tflite(path: Path, threads: int) -> Any:
    """A LiteRT interpreter of ``path``, tensors allocated."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise ModelError(
                f"{path.name}: .tflite needs ai-edge-litert"
                " (pip install 'plant-edge-agent[tflite]')"
            ) from exc
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except Exception as exc:  # LiteRT raises ValueError/RuntimeError for bad files
        raise ModelError(f"{path.name}: not a valid TFLite model ({exc})") from exc
    return interpreter
