"""What ``run`` checks at start before opening anything, shared with ``check-config``.

``check-config`` is the unit's ``ExecStartPre`` and the installer's last step: if it
says "ok", the start must not then fail on a model. So both commands load the
detector through :func:`load_detector`: every asset's model file and card loaded, the
card's signals matched to the asset's, one probe window scored. A fault is a
:class:`ModelError` (exit 78) that names the config line of the asset's ``model:`` key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_agent.config import AgentConfig, load_config
from edge_agent.detect.detector import Detector
from edge_agent.registry import build_source


def load_detector(config: AgentConfig) -> Detector:
    """The detector of ``config``, every model loaded and checked (the agent's start).

    :meth:`Detector.load` is the one loader (the detection tools use it too); this adds the
    config's file and line to its errors.

    Raises:
        ModelError: a model file missing or corrupt, or not matching its asset;
            the message starts with ``file:line: detect.assets[N].model:``.
    """
    return Detector.load(config.detect, config.config_path, lambda n: model_key(config, n))


def model_key(config: AgentConfig, index: int) -> str:
    """``file:line: detect.assets[N].model``: where asset N names its model."""
    return config.where(("detect", "assets", index, "model"))


@dataclass(frozen=True)
class Checked:
    """What a config that passed every start check holds."""

    config: AgentConfig
    sources: list[Any]
    detector: Detector

    def summary(self) -> str:
        """``ok (2 source(s), 14 signal(s), 1 sink(s)); 1 model(s) loaded (numpy 1)``."""
        signals = sum(len(s.signals()) for s in self.sources)
        text = (
            f"ok ({len(self.sources)} source(s), {signals} signal(s), "
            f"{len(self.config.sinks)} sink(s)); "
            f"{len(self.detector.assets) + len(self.detector.prognostic)} model(s) loaded"
        )
        engines = self.engines()
        if engines:
            text += " (" + ", ".join(f"{k} {v}" for k, v in sorted(engines.items())) + ")"
        return text

    def engines(self) -> dict[str, int]:
        """How many models each engine runs (``numpy``, ``onnxruntime``, ``litert``)."""
        backends = [a.slot.model.backend for a in self.detector.assets.values()]
        backends += [p.model.backend for p in self.detector.prognostic.values()]
        return {b: backends.count(b) for b in set(backends)}


def check_config(path: Any) -> Checked:
    """Everything ``run`` checks before it opens a device, a database or a connection.

    Raises:
        ConfigError: the file is not a valid config (exit 78).
        ModelError: a model or card does not load or fit (exit 78).
    """
    return check_loaded(load_config(path))


def check_loaded(config: AgentConfig) -> Checked:
    """:func:`check_config` of a config already loaded (a reload's, parsed by a child).

    Raises:
        ModelError: a model or card does not load or fit (exit 78).
    """
    sources = [build_source(c) for c in config.sources]
    return Checked(config, sources, load_detector(config))
