"""YAML -> pydantic models; every error carries the file, the YAML path and the line.

The YAML is composed into nodes first so each value keeps its line; ``${VAR}``
is substituted in strings (a missing variable is an error); then the pydantic
models validate. Errors are gathered into one :class:`ConfigError` whose message
lists each problem as ``file:line: path: message``.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, PrivateAttr, ValidationError, field_validator

from edge_agent.config_errors import YamlPath, describe, format_path, nearest_line
from edge_agent.detect.detector import DetectConfig
from edge_agent.errors import ConfigError
from edge_agent.forward.outbox import OutboxConfig
from edge_agent.metrics import MetricsConfig
from edge_agent.registry import SinkConfig, SourceConfig
from edge_agent.schema import StrictModel
from edge_agent.twin.store import TwinConfig
from edge_agent.web.config import WebConfig

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME_RE = r"^[a-z][a-z0-9_\-]*$"


class AgentSection(StrictModel):
    """Identity and housekeeping of this gateway."""

    id: str = Field(default="edge-agent", pattern=r"^[A-Za-z0-9_\-.]+$")
    data_dir: Path = Path("/var/lib/edge-agent")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class AgentConfig(StrictModel):
    """The whole config file."""

    agent: AgentSection = AgentSection()
    sources: list[SourceConfig] = Field(default_factory=list)
    twin: TwinConfig = TwinConfig()
    detect: DetectConfig = DetectConfig()
    outbox: OutboxConfig = OutboxConfig()
    sinks: list[SinkConfig] = Field(default_factory=list)
    metrics: MetricsConfig = MetricsConfig()
    web: WebConfig = WebConfig()
    _base_dir: Path = PrivateAttr(default=Path("."))

    @field_validator("sources", "sinks")
    @classmethod
    def _names_unique(cls, items: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for item in items:
            if not re.match(_NAME_RE, item.name):
                raise ValueError(f"name {item.name!r} must be lowercase: letters, digits, _ or -")
            if item.name in seen:
                raise ValueError(f"name {item.name!r} is used twice")
            seen.add(item.name)
        return items

    @field_validator("metrics")
    @classmethod
    def _metrics_moved(cls, metrics: MetricsConfig) -> MetricsConfig:
        # /metrics is served by the site view's server now: one port, one access rule.
        if metrics.listen or metrics.allow_remote:
            raise ValueError(
                "metrics.listen and metrics.allow_remote moved to the web: section: /metrics "
                f"is served there (write web: {{listen: {metrics.listen or '127.0.0.1:8470'!r}}})"
            )
        return metrics

    def config_path(self, path: str | Path) -> Path:
        """Resolve a path written in the config (a model file) against its folder."""
        return Path(path) if Path(path).is_absolute() else self._base_dir / path

    def data_path(self, path: str | Path) -> Path:
        """Resolve a data file (twin, outbox) against ``agent.data_dir``."""
        data_dir = self.config_path(self.agent.data_dir)
        return Path(path) if Path(path).is_absolute() else data_dir / path


def load_config(path: str | Path) -> AgentConfig:
    """Read, substitute and validate a config file.

    Raises:
        ConfigError: with every problem found, each naming file, YAML path and line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> AgentConfig:
    """Validate config ``text`` that was read from ``path``."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    lines: dict[YamlPath, int] = {}
    problems: list[str] = []
    data = _to_python(node, (), lines, problems, path) if node is not None else {}
    if problems:
        raise ConfigError("\n".join(problems))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the config must be a mapping of sections")
    # A section whose keys are all commented out reads as null: take it as empty.
    empty: dict[str, Any] = {"sources": [], "sinks": []}
    data = {k: (empty.get(k, {}) if v is None else v) for k, v in data.items()}
    try:
        base_dir = path.resolve().parent
        config = AgentConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(describe(exc, AgentConfig, data, lines, path)) from None
    config._base_dir = base_dir
    unknown = _unknown_signals(config)
    if unknown:
        raise ConfigError("\n".join(f"{path}:{nearest_line(at, lines)}: {m}" for at, m in unknown))
    return config


def _unknown_signals(config: AgentConfig) -> list[tuple[YamlPath, str]]:
    """Rules and assets watching a signal no source produces: they would never fire.

    A config without sources is an offline one (``replay``): nothing to check against.
    The detector's own ``detect.<asset>.health/score/alarm`` signals are allowed.
    """
    from edge_agent.registry import build_source

    if not config.sources:
        return []
    known = sorted({i.signal for c in config.sources for i in build_source(c).signals()})
    watched: list[tuple[YamlPath, str]] = [
        (("detect", "rules", n, "signal"), rule.signal)
        for n, rule in enumerate(config.detect.rules)
    ]
    for n, asset in enumerate(config.detect.assets):
        watched += [(("detect", "assets", n, "signals", k), s) for k, s in enumerate(asset.signals)]
    problems = []
    for at, signal in watched:
        if signal not in known and not signal.startswith("detect."):
            close = difflib.get_close_matches(signal, known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append((at, f"{format_path(at)}: no source produces {signal!r}{hint}"))
    return problems


def _to_python(
    node: yaml.Node, at: YamlPath, lines: dict[YamlPath, int], problems: list[str], path: Path
) -> Any:
    lines[at] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader(" ").construct_object(key_node)
            result[key] = _to_python(value_node, (*at, str(key)), lines, problems, path)
            lines.setdefault((*at, str(key)), key_node.start_mark.line + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(item, (*at, i), lines, problems, path) for i, item in enumerate(node.value)
        ]
    value = yaml.SafeLoader(" ").construct_object(node)
    if isinstance(value, str) and "${" in value:
        return _substitute(value, at, lines[at], problems, path)
    return value


def _substitute(value: str, at: YamlPath, line: int, problems: list[str], path: Path) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            problems.append(
                f"{path}:{line}: {format_path(at)}: environment variable {name} is not set"
            )
            return ""
        return os.environ[name]

    return _ENV_RE.sub(replace, value)
