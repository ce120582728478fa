"""The card of a prognostic model: which signals, which window, what the output means.

A prognostic model maps a window of **raw** values ``[batch, window, n]`` to the
remaining useful life ``rul`` ``[batch, 1]`` in the asset's own time unit
(``unit``: cycles, hours); its normalisation lives inside the graph, so the card
carries no mean, std or threshold. Outputs lie in ``[0, cap]``; a value at the
cap reads "at least ``cap``" (a healthy machine's life cannot be seen in its
signals). Stored like an anomaly card (embedded under ``edge_agent.card`` or
beside the file as ``<stem>.card.json``) with ``"kind": "prognostic"``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from edge_agent.errors import ModelError

KIND = "prognostic"
OUTPUT = "rul"
IN_GRAPH = "normalised_in_graph"


@dataclass(frozen=True, slots=True)
class PrognosticCard:
    """Description of a prognostic model.

    Attributes:
        name: short model name, used in prognosis messages.
        signals: the signals the model reads, in input column order.
        window: time steps per window.
        step: seconds between two steps on the asset's grid.
        unit: the unit of the output (the asset's own time unit, e.g. ``cycles``).
        cap: largest output; at the cap the life is "at least" this long.
        version: card version.
        info: free-form provenance: training data, recipe, metrics.
    """

    name: str
    signals: tuple[str, ...]
    window: int
    step: float
    unit: str
    cap: float
    version: int = 1
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.signals)
        problem = ""
        if n == 0 or len(set(self.signals)) != n:
            problem = "no signals, or a signal named twice"
        elif self.window < 1 or self.step <= 0:
            problem = f"window ({self.window}) and step ({self.step}) must be positive"
        elif not (math.isfinite(self.cap) and self.cap > 0):
            problem = f"cap must be a positive number, got {self.cap}"
        if problem:
            raise ModelError(f"prognostic card {self.name!r}: {problem}")

    @property
    def kind(self) -> str:
        """Always ``prognostic``."""
        return KIND

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (with ``kind``, ``output`` and ``normalised_in_graph``)."""
        data = dataclasses.asdict(self)
        data["signals"] = list(self.signals)
        return {"kind": KIND, **data, "output": OUTPUT, "normalised_in_graph": True}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrognosticCard:
        """Build a card from a dict, with a ModelError naming a missing or bad key."""
        if data.get("kind") != KIND:
            raise ModelError(f"not a prognostic card (kind {data.get('kind')!r})")
        if data.get("output", OUTPUT) != OUTPUT or data.get(IN_GRAPH, True) is not True:
            raise ModelError(f"a prognostic model gives {OUTPUT!r} from raw values")
        known = {f.name for f in dataclasses.fields(cls)} | {"kind", "output", IN_GRAPH}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"prognostic card: unknown keys {unknown}")
        if not isinstance(data.get("signals"), list):
            raise ModelError("prognostic card: 'signals' must be a list")
        try:
            return cls(
                name=str(data["name"]),
                signals=tuple(str(s) for s in data["signals"]),
                window=int(data["window"]),
                step=float(data["step"]),
                unit=str(data["unit"]),
                cap=float(data["cap"]),
                version=int(data.get("version", 1)),
                info=dict(data.get("info", {})),
            )
        except KeyError as exc:
            raise ModelError(f"prognostic card: missing key {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise ModelError(f"prognostic card: bad value ({exc})") from exc

    @classmethod
    def from_json(cls, text: str, origin: str) -> PrognosticCard:
        """Parse a card from JSON text; ``origin`` names it in errors."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            return cls.from_dict(data)
        except (ValueError, ModelError) as exc:
            raise ModelError(f"{origin}: {exc}") from exc
