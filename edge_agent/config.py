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
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, field_validator

from edge_agent.detect.detector import DetectConfig
from edge_agent.errors import ConfigError
from edge_agent.forward.outbox import OutboxConfig
from edge_agent.metrics import MetricsConfig
from edge_agent.registry import SinkConfig, SourceConfig
from edge_agent.schema import StrictModel
from edge_agent.twin.store import TwinConfig

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME_RE = r"^[a-z][a-z0-9_\-]*$"

YamlPath = tuple[str | int, ...]


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
    try:
        base_dir = path.resolve().parent
        config = AgentConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, data, lines, path)) from None
    config._base_dir = base_dir
    return config


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


def format_path(at: YamlPath) -> str:
    """``('sources', 0, 'registers', 3, 'data_typ')`` -> ``sources[0].registers[3].data_typ``."""
    out = ""
    for part in at:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top)"


def _describe(exc: ValidationError, data: Any, lines: dict[YamlPath, int], path: Path) -> str:
    problems = []
    for error in exc.errors():
        at = _yaml_path(error["loc"], data)
        line = _nearest_line(at, lines)
        message = _message(error, at, data)
        problems.append(f"{path}:{line}: {format_path(at)}: {message}")
    return "\n".join(problems)


def _yaml_path(loc: tuple[Any, ...], data: Any) -> YamlPath:
    """Drop pydantic's union tags (``sources.0.modbus.x`` -> ``sources[0].x``)."""
    at: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue
        if isinstance(node, dict) and isinstance(part, str) and part.startswith("function-"):
            continue
        at.append(part)
        node = _child(node, part)
    return tuple(at)


def _child(node: Any, part: Any) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _nearest_line(at: YamlPath, lines: dict[YamlPath, int]) -> int:
    for end in range(len(at), -1, -1):
        if at[:end] in lines:
            return lines[at[:end]]
    return 1


def _message(error: Any, at: YamlPath, data: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_key(at, data)
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        expected = error["ctx"]["expected_tags"]
        return f"unknown type {error['input'].get('type')!r}; expected one of {expected}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message


def _unknown_key(at: YamlPath, data: Any) -> str:
    parent = data
    for part in at[:-1]:
        parent = _child(parent, part)
    known = _known_keys(at[:-1], data)
    close = difflib.get_close_matches(str(at[-1]), known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown key{hint}"


def _known_keys(at: YamlPath, data: Any) -> list[str]:
    """Field names of the model that validates the mapping at ``at``."""
    model: Any = AgentConfig
    node = data
    for part in at:
        node = _child(node, part)
        model = _field_model(model, part, node)
        if model is None:
            return []
    is_model = isinstance(model, type) and issubclass(model, BaseModel)
    return list(model.model_fields) if is_model else []


def _field_model(model: Any, part: str | int, node: Any) -> Any:
    from typing import get_args, get_origin

    if isinstance(part, int):
        annotation = model
    elif isinstance(model, type) and issubclass(model, BaseModel) and part in model.model_fields:
        annotation = model.model_fields[part].annotation
    else:
        return None
    return _unwrap(annotation, node, get_args, get_origin)


def _unwrap(annotation: Any, node: Any, get_args: Any, get_origin: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = get_args(annotation)
    if get_origin(annotation) is list and isinstance(node, dict):
        return None
    if get_origin(annotation) is list:
        return args[0] if args else None
    for arg in args:
        inner = _unwrap(arg, node, get_args, get_origin)
        if inner is None:
            continue
        if isinstance(inner, type) and issubclass(inner, BaseModel) and isinstance(node, dict):
            tag = inner.model_fields.get("type")
            if tag is not None and node.get("type") not in get_args(tag.annotation):
                continue
        return inner
    return None
