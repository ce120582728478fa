"""The model card: what a model expects and how to read its output.

A card travels inside the ONNX file (``metadata_props`` key ``edge_agent.card``,
JSON) or beside the model as ``<stem>.card.json`` (also ``<name>.card.json``).
A card beside the model wins over the embedded one, so a site calibration can
replace normalisation and threshold without rewriting the model file.

This module has no heavy imports: the CLI and the config check can read cards
without loading onnxruntime.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import ModelError

CARD_KEY = "edge_agent.card"
SCORES = ("mean_error",)


@dataclass(frozen=True, slots=True)
class ModelCard:
    """Description of an anomaly model.

    Attributes:
        name: short model name, used in alerts.
        signals: the signals the model reads, in input column order.
        window: time steps per window (the model input is [batch, window, n_signals]).
        step: seconds between two steps; the detector aligns signals to it.
        mean: per-signal normalisation mean, applied as ``(x - mean) / std``.
        std: per-signal normalisation standard deviation (> 0).
        threshold: score above which a window is anomalous.
        score: how errors become one score; ``mean_error`` = mean over signals.
        version: card version, bumped by each calibration.
        calibration: how to recalibrate the threshold on site: ``quantile`` of the
            calibration scores times ``factor`` (see ``model.calibrate_card``).
        info: free-form provenance: training data, metrics, size, latency.
    """

    name: str
    signals: tuple[str, ...]
    window: int
    step: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    threshold: float
    score: str = "mean_error"
    version: int = 1
    calibration: dict[str, float] = field(default_factory=lambda: {"quantile": 0.99, "factor": 1.5})
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise ModelError(f"model card {self.name!r}: {problem}")

    def _problem(self) -> str:
        """The first inconsistency in the card, or ``""``."""
        n = len(self.signals)
        if n == 0:
            return "no signals"
        if len(set(self.signals)) != n:
            return "duplicate signal names"
        if self.window < 1 or self.step <= 0:
            return f"window ({self.window}) and step ({self.step}) must be positive"
        if len(self.mean) != n or len(self.std) != n:
            return f"mean/std have {len(self.mean)}/{len(self.std)} values for {n} signals"
        if not all(math.isfinite(v) for v in (*self.mean, *self.std, self.threshold)):
            return "mean, std and threshold must be finite numbers"
        if min(self.std) <= 0:
            return "std must be > 0 for every signal"
        if self.score not in SCORES:
            return f"unknown score {self.score!r} (known: {', '.join(SCORES)})"
        return ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        data = dataclasses.asdict(self)
        data["signals"] = list(self.signals)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    def to_json(self) -> str:
        """The card as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """Build a card from a dict, with a ModelError naming a missing or bad key."""
        kind = data.get("kind", "anomaly")
        if kind != "anomaly":
            raise ModelError(f"model card: a {kind!r} model, not an anomaly model")
        data = {k: v for k, v in data.items() if k != "kind"}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ModelError(f"model card: unknown keys {unknown}")
        for key in ("signals", "mean", "std"):
            if key in data and not isinstance(data[key], list):
                raise ModelError(f"model card: {key!r} must be a list, got {data[key]!r}")
        try:
            return cls(
                name=str(data["name"]),
                signals=tuple(str(s) for s in data["signals"]),
                window=int(data["window"]),
                step=float(data["step"]),
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
                threshold=float(data["threshold"]),
                score=str(data.get("score", "mean_error")),
                version=int(data.get("version", 1)),
                calibration={k: float(v) for k, v in data.get("calibration", {}).items()}
                or {"quantile": 0.99, "factor": 1.5},
                info=dict(data.get("info", {})),
            )
        except KeyError as exc:
            raise ModelError(f"model card: missing key {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise ModelError(f"model card: bad value ({exc})") from exc

    @classmethod
    def from_json(cls, text: str, origin: str = "model card") -> ModelCard:
        """Parse a card from JSON text; ``origin`` names it in errors."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{origin}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ModelError(f"{origin}: expected a JSON object")
        try:
            return cls.from_dict(data)
        except ModelError as exc:
            raise ModelError(f"{origin}: {exc}") from exc

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def card_kind(text: str) -> str:
    """The ``kind`` of a card's JSON text (``anomaly`` when absent or unreadable)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return "anomaly"  # the anomaly parser names the JSON error
    kind = data.get("kind", "anomaly") if isinstance(data, dict) else "anomaly"
    return str(kind)


def sidecar_text(model_path: Path) -> tuple[str, str] | None:
    """``(text, path)`` of the card beside a model file, or None."""
    for candidate in sidecar_paths(model_path):
        if candidate.is_file():
            return candidate.read_text(), str(candidate)
    return None


def sidecar_paths(model_path: Path) -> list[Path]:
    """Where a card beside ``model_path`` may live, in order of preference."""
    return [
        model_path.with_name(model_path.stem + ".card.json"),
        model_path.with_name(model_path.name + ".card.json"),
    ]


def read_sidecar(model_path: Path) -> ModelCard | None:
    """The card beside a model file, or None when there is none."""
    for candidate in sidecar_paths(model_path):
        if candidate.is_file():
            return ModelCard.from_json(candidate.read_text(), origin=str(candidate))
    return None


def write_sidecar(model_path: Path, card: ModelCard) -> Path:
    """Write ``<stem>.card.json`` beside the model atomically; returns its path."""
    target = sidecar_paths(model_path)[0]
    tmp = target.with_suffix(".tmp")
    tmp.write_text(card.to_json())
    tmp.replace(target)
    return target
