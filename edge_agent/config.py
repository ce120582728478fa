"""YAML -> pydantic models; every error carries the file, the YAML path and the line.

The YAML is read by :mod:`edge_agent.config_yaml` (bounded, each value keeps its
line); ``${VAR}`` is substituted in strings (a missing variable is an error, except
for commands that never connect: see ``offline``); then the pydantic models validate.
Errors are gathered into one :class:`ConfigError` whose message lists each problem as
``file:line: path: message``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from edge_agent.commands.config import WritesConfig
from edge_agent.config_errors import YamlPath, describe, format_path, nearest_line
from edge_agent.detect.config import DetectConfig, ThresholdRuleConfig
from edge_agent.errors import ConfigError
from edge_agent.forward.config import OutboxConfig
from edge_agent.registry import SinkConfig, SourceConfig
from edge_agent.schema import Duration, StrictModel, format_duration, is_loopback
from edge_agent.twin.config import TwinConfig
from edge_agent.web.config import WebConfig, parse_listen


class MetricsConfig(StrictModel):
    """Config of the Prometheus endpoint (``metrics:`` section).

    Attributes:
        listen: ``host:port`` to serve ``/metrics`` on (``[::1]:9108`` for IPv6);
            empty turns the endpoint off.
        allow_remote: allow a non-loopback ``listen`` address. Metrics name
            sources, assets and sinks, i.e. they reveal the plant's layout.
        refresh: how often the outbox backlog, the detector's health and scores
            and the sources' own counters are re-read for scrapes.
    """

    listen: str = ""
    allow_remote: bool = False
    refresh: Duration = 5.0

    @model_validator(mode="after")
    def _loopback_unless_allowed(self) -> MetricsConfig:
        if not self.listen:
            return self
        host, _ = parse_listen(self.listen)
        if not self.allow_remote and not is_loopback(host):
            raise ValueError(
                f"metrics listen address {self.listen!r} is not loopback; metrics reveal "
                "the plant's layout: use 127.0.0.1:PORT, or set allow_remote: true"
            )
        if self.refresh <= 0:
            raise ValueError("metrics refresh must be longer than 0s")
        return self


_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME_RE = r"^[a-z][a-z0-9_\-]*$"


class AgentSection(StrictModel):
    """Identity and housekeeping of this gateway."""

    id: str = Field(default="edge-agent", pattern=r"^[A-Za-z0-9_\-.]+$")
    data_dir: Path = Path("/var/lib/edge-agent")
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class AgentConfig(StrictModel):
    """The whole config file."""

    agent: AgentSection = Field(default_factory=AgentSection)
    sources: list[SourceConfig] = Field(default_factory=list)
    twin: TwinConfig = Field(default_factory=TwinConfig)
    detect: DetectConfig = Field(default_factory=DetectConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    sinks: list[SinkConfig] = Field(default_factory=list)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    writes: WritesConfig = Field(default_factory=WritesConfig)
    _base_dir: Path = PrivateAttr(default=Path("."))
    _file: Path = PrivateAttr(default=Path("config.yaml"))
    _lines: dict[YamlPath, int] = PrivateAttr(default_factory=dict)

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

    @property
    def file(self) -> Path:
        """The file this config was read from (a reload reads it again)."""
        return self._file

    def config_path(self, path: str | Path) -> Path:
        """Resolve a path written in the config (a model file) against its folder."""
        return Path(path) if Path(path).is_absolute() else self._base_dir / path

    def where(self, at: YamlPath) -> str:
        """``file:line: yaml.path`` of a key, for errors found after loading (a model file)."""
        return f"{self._file}:{nearest_line(at, self._lines)}: {format_path(at)}"

    def data_path(self, path: str | Path) -> Path:
        """Resolve a data file (twin, outbox) against ``agent.data_dir``."""
        data_dir = self.config_path(self.agent.data_dir)
        return Path(path) if Path(path).is_absolute() else data_dir / path

    def forget_signal_lines(self) -> None:
        """Drop the lines of the items of every source's lists (registers, nodes, signals).

        Once loaded, a config is asked for lines only by :meth:`where`, for a model
        that fails to load; the lines of the signals would cost the running agent
        about 860 bytes per signal. A path under a dropped item gets its list's line.
        """
        self._lines = {at: n for at, n in self._lines.items() if not _in_source_list(at)}


def _in_source_list(at: YamlPath) -> bool:
    """``sources[i].registers[j]...``: a path at or under an item of a source's list."""
    return len(at) > 3 and at[0] == "sources" and isinstance(at[3], int)


def load_config(
    path: str | Path, *, offline: bool = False, signal_lines: bool = True
) -> AgentConfig:
    """Read, substitute and validate a config file.

    Args:
        path: the YAML file.
        offline: for operator commands that never connect (twin, outbox, calibrate,
            replay): an unset ``${VAR}`` stays as written instead of being an error,
            so they run in a shell without the service's environment file. The
            secrets such variables hold are only used by connections.
        signal_lines: False: skip the lines the running agent drops
            (:meth:`AgentConfig.forget_signal_lines`). An error may then name a
            list's line instead of an item's: load again with lines to report it.

    Raises:
        ConfigError: with every problem found, each naming file, YAML path and line.
    """
    # The YAML reader is imported here: the agent's process gets its config from a
    # child (config_fork.py) and never reads YAML (PyYAML and the reader: 1.5 MB).
    from edge_agent.config_yaml import read_config_bytes

    path = Path(path)
    return parse_config(read_config_bytes(path), path, offline=offline, signal_lines=signal_lines)


def parse_config(
    text: str | bytes, path: Path, *, offline: bool = False, signal_lines: bool = True
) -> AgentConfig:
    """Validate config ``text`` (or the file's bytes) that was read from ``path``."""
    from edge_agent.config_yaml import load_yaml

    data, lines = load_yaml(text, path, signal_lines=signal_lines)
    problems: list[str] = []
    unset: list[str] = []
    substituted: dict[YamlPath, tuple[str, str]] = {}
    if _may_hold_variables(text):  # the walk copies every value: 20 ms at 10,000 signals
        data = _substitute_all(data, (), lines, unset if offline else problems, path, substituted)
    if problems:
        raise ConfigError("\n".join(problems))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the config must be a mapping of sections")
    # A section whose keys are all commented out reads as null: take it as empty.
    # Top-level ``x-...`` keys only hold anchors for ``<<: *name`` merges elsewhere.
    empty: dict[str, Any] = {"sources": [], "sinks": []}
    data = {
        k: (empty.get(k, {}) if v is None else v) for k, v in data.items() if not k.startswith("x-")
    }
    try:
        base_dir = path.resolve().parent
        config = AgentConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        # A placeholder may be what a field refused (a port, a host): say which were unset.
        problems = [describe(exc, AgentConfig, data, lines, path, substituted), *unset]
        raise ConfigError("\n".join(problems)) from None
    config._base_dir, config._file, config._lines = base_dir, path, lines
    unknown = _unknown_signals(config)
    if unknown:
        raise ConfigError("\n".join(f"{path}:{nearest_line(at, lines)}: {m}" for at, m in unknown))
    config.detect.rules.extend(source_down_rules(config))
    return config


def source_down_rules(config: AgentConfig) -> list[ThresholdRuleConfig]:
    """The built-in "source down" rule of each source (``detect.source_down``).

    It watches the source's link signal (``link.<source>``, 0 while the link is
    down) and raises after ``source_down``; a rule of the same name written in
    the config takes its place.
    """
    hold = config.detect.source_down
    if hold == "off":
        return []
    taken = {rule.name for rule in config.detect.rules}
    rules = []
    for source in config.sources:
        name = f"{source.name}-down"
        if name in taken:
            continue
        asset = getattr(source, "asset", "") or source.name
        rule = {"name": name, "type": "threshold", "signal": f"link.{source.name}",
                "below": 0.5, "for": format_duration(hold), "asset": asset}  # fmt: skip
        rules.append(ThresholdRuleConfig.model_validate(rule))
    return rules


def _unknown_signals(config: AgentConfig) -> list[tuple[YamlPath, str]]:
    """Rules and assets watching a signal no source produces: they would never fire.

    A config without sources is an offline one (``replay``): nothing to check against.
    The detector's own ``detect.<asset>.health/score/alarm`` signals are allowed.
    """
    if not config.sources:
        return []
    # From the configs: building the sources would import their modules (a child's parse).
    produced = {name for source in config.sources for name in source.signal_names()}
    known = produced | {f"link.{c.name}" for c in config.sources}
    watched: list[tuple[YamlPath, str]] = [
        (("detect", "rules", n, "signal"), rule.signal)
        for n, rule in enumerate(config.detect.rules)
    ]
    for n, asset in enumerate(config.detect.assets):
        watched += [(("detect", "assets", n, "signals", k), s) for k, s in enumerate(asset.signals)]
    # A run-state on a signal nobody produces would count as "running" for good, silently.
    watched += _run_state_signals(config)
    problems = []
    for at, signal in watched:
        if signal not in known and not signal.startswith("detect."):
            hint = _did_you_mean(signal, known)
            problems.append((at, f"{format_path(at)}: no source produces {signal!r}{hint}"))
    return problems


def _did_you_mean(signal: str, known: set[str]) -> str:
    import difflib  # only for a config error

    close = difflib.get_close_matches(signal, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _run_state_signals(config: AgentConfig) -> list[tuple[YamlPath, str]]:
    from edge_agent.detect.runstate import RunState

    out: list[tuple[YamlPath, str]] = []
    for section, items in (("assets", config.detect.assets), ("rules", config.detect.rules)):
        for n, item in enumerate(items):
            if item.run_state:
                at: YamlPath = ("detect", section, n, "run_state")
                out.append((at, RunState.parse(item.run_state).signal))
    return out


def _may_hold_variables(text: str | bytes) -> bool:
    """Whether a value of the file can hold ``${``: the text holds it, or an escape may make it."""
    if isinstance(text, bytes):
        return b"${" in text or b"\\" in text
    return "${" in text or "\\" in text


def _substitute_all(
    data: Any,
    at: YamlPath,
    lines: dict[YamlPath, int],
    problems: list[str],
    path: Path,
    substituted: dict[YamlPath, tuple[str, str]],
) -> Any:
    """``${VAR}`` replaced in every string (keys excepted: they are names).

    Each replaced string is noted in ``substituted`` (path -> value, as written): a
    variable may hold a secret whatever field it lands in, so an error never echoes it.
    """
    if isinstance(data, dict):
        return {
            k: _substitute_all(v, (*at, k), lines, problems, path, substituted)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [
            _substitute_all(v, (*at, i), lines, problems, path, substituted)
            for i, v in enumerate(data)
        ]
    if isinstance(data, str) and "${" in data:
        value = _substitute(data, at, nearest_line(at, lines), problems, path)
        substituted[at] = (value, data)
        return value
    return data


def _substitute(value: str, at: YamlPath, line: int, problems: list[str], path: Path) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            problems.append(
                f"{path}:{line}: {format_path(at)}: environment variable {name} is not set"
            )
            return match.group(0)  # kept as written: an offline command's placeholder
        return os.environ[name]

    return _ENV_RE.sub(replace, value)
