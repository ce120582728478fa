"""The config parsed in a child is the config parsed here, errors included; the agent's
process, which gets it from the child, builds no validator and keeps no per-signal lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.config import AgentConfig, load_config, parse_config
from edge_agent.config_errors import YamlPath
from edge_agent.config_fork import for_running, load_config_apart, load_config_forked
from edge_agent.errors import ConfigError
from edge_agent.schema import plain
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"
DEMO = ROOT / "edge_agent" / "sim" / "demo.yaml"


def test_the_forked_load_equals_the_direct_one() -> None:
    direct, forked = load_config(EXAMPLE), load_config_forked(EXAMPLE)
    assert forked.model_dump() == direct.model_dump()
    assert forked.where(("sources", 0, "name")) == direct.where(("sources", 0, "name"))
    assert forked.data_path("twin.db") == direct.data_path("twin.db")


def test_a_config_error_is_raised_as_by_load_config(tmp_path: Path) -> None:
    bad = tmp_path / "agent.yaml"
    bad.write_text("agent:\n  id: gw1\n  data_dirr: /tmp\n")
    with pytest.raises(ConfigError) as direct:
        load_config(bad)
    with pytest.raises(ConfigError) as forked:
        load_config_forked(bad)
    assert str(forked.value) == str(direct.value)
    assert "data_dirr" in str(forked.value)


def test_the_agent_process_builds_no_validator(tmp_path: Path) -> None:
    # The whole agent on the simulated pump, with the model, the site view and a
    # reload: every config model it used came validated from a child process.
    probe = Path(__file__).resolve().parent / "lean_agent_probe.py"
    command = [sys.executable, str(probe), str(tmp_path), str(free_port())]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["built"] == []
    # prometheus_client (about 4 MB) is loaded by the first /metrics scrape, not before
    assert seen == {"built": [], "prometheus before a scrape": False,
                    "prometheus after a scrape": True}  # fmt: skip


def test_a_reload_parses_apart_as_load_config() -> None:
    direct, apart = load_config(EXAMPLE), load_config_apart(EXAMPLE)
    assert apart.model_dump() == direct.model_dump()
    assert apart.where(("detect", "assets", 0, "model")) == direct.where(
        ("detect", "assets", 0, "model")
    )


def test_a_reload_raises_the_config_error_of_load_config(tmp_path: Path) -> None:
    bad = tmp_path / "agent.yaml"
    bad.write_text("agent:\n  id: gw1\ntwin:\n  max_samples: 5\n  max_samples: 6\n")
    with pytest.raises(ConfigError) as direct:
        load_config(bad)
    with pytest.raises(ConfigError) as apart:
        load_config_apart(bad)
    assert str(apart.value) == str(direct.value)
    assert "given twice" in str(apart.value)


def test_running_config_keeps_lines_but_the_signals(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    full, trimmed = parse_config(text, EXAMPLE), for_running(parse_config(text, EXAMPLE))
    for at in [("detect", "assets", 0, "model"), ("sources", 0, "url"), ("sinks", 0, "name")]:
        assert trimmed.where(at) == full.where(at)
    register = ("sources", 0, "registers", 2, "address")
    assert _line(full, register) != _line(trimmed, register)  # now the list's line
    assert _line(trimmed, register) == _line(full, ("sources", 0, "registers"))
    assert trimmed.model_dump() == full.model_dump()


def _line(config: AgentConfig, at: YamlPath) -> str:
    return config.where(at).split(":")[1]


def test_registers_with_the_same_keys_share_one_fields_set() -> None:
    config = for_running(load_config(EXAMPLE))
    registers = config.sources[0].registers  # type: ignore[union-attr]
    by_keys: dict[frozenset[str], set[str]] = {}
    for register in registers:
        fields_set = register.model_fields_set
        assert by_keys.setdefault(frozenset(fields_set), fields_set) is fields_set
    assert len(by_keys) < len(registers)
    # A copy with a change gets its own set; the shared one is left as it was.
    before = set(registers[0].model_fields_set)
    changed = registers[0].model_copy(update={"unit": "K"})
    assert "unit" in changed.model_fields_set
    assert registers[0].model_fields_set == before


def test_plain_is_what_model_dump_gives() -> None:
    # plain() serves the API's config without building pydantic's serializer.
    for path in (EXAMPLE, DEMO):
        config = parse_config(path.read_text(), path, offline=True)
        assert plain(config) == config.model_dump(mode="json", by_alias=True)


def test_plain_redacts_secrets_as_model_dump_does(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace("# password: ${MQTT_PASSWORD}", "password: hunter2")
    assert "password: hunter2" in text
    config = parse_config(text, EXAMPLE)
    dumped = plain(config)
    assert "hunter2" not in json.dumps(dumped)
    assert dumped == config.model_dump(mode="json", by_alias=True)
