"""The config parsed in a child is the config parsed here, errors included; the agent's
process, which gets it from the child, builds no validator and keeps no per-signal lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from edge_agent.config import AgentConfig, load_config, parse_config
from edge_agent.config_errors import YamlPath
from edge_agent.config_fork import (
    for_running,
    load_config_apart,
    load_config_forked,
    load_for_running,
    runtime_modules,
)
from edge_agent.errors import ConfigError
from edge_agent.schema import plain
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.registers import RegisterTable
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
    # a /metrics scrape imports nothing (prometheus_client, 2 MB with what it imported,
    # is not used by the daemon); the page's files and importlib.resources (0.5 MB) are
    # read at the first page request
    assert seen == {"built": [], "loaded by a scrape": [], "page files read before the page": False,
                    "page files read after the page": True, "numpy.ma": False,
                    "prometheus_client": False}  # fmt: skip


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


def test_read_without_the_signals_lines_as_trimmed_after() -> None:
    trimmed, direct = for_running(load_config(EXAMPLE)), load_for_running(EXAMPLE)
    assert direct._lines == trimmed._lines and direct.model_dump() == trimmed.model_dump()
    lean = load_config(EXAMPLE, signal_lines=False)
    assert ("sources", 0, "registers") in lean._lines
    items = [at for at in lean._lines if len(at) > 3 and at[0] == "sources"]
    assert items and all(not isinstance(at[3], int) for at in items)  # serial framing...


def test_a_fault_in_a_signal_names_its_own_line(tmp_path: Path) -> None:
    # Read without the items' lines, a fault would name the list's: read again with them.
    bad, faulty = tmp_path / "agent.yaml", "address: 3002, data_type: float32"
    lines = EXAMPLE.read_text().splitlines(keepends=True)
    (line,) = [n for n, text in enumerate(lines, 1) if faulty in text]
    bad.write_text(EXAMPLE.read_text().replace(faulty, "address: 3002, data_type: float33"))
    with pytest.raises(ConfigError) as direct:
        load_config(bad)
    assert f"{bad}:{line}:" in str(direct.value)
    for load in (load_for_running, load_config_forked, load_config_apart):
        with pytest.raises(ConfigError) as other:
            load(bad)
        assert str(other.value) == str(direct.value)


def test_runtime_modules_are_those_the_config_names(tmp_path: Path) -> None:
    config = load_config(EXAMPLE)
    assert runtime_modules(config) == [
        "edge_agent.sources.modbus.source", "edge_agent.sources.opcua.source",
        "edge_agent.sources.serial.source", "edge_agent.forward.mqtt", "edge_agent.forward.http",
        "edge_agent.forward.jsonl", "edge_agent.detect.onnx_small",
    ]  # fmt: skip
    forced = tmp_path / "agent.yaml"  # onnxruntime forced: the numpy engine is not imported
    model = "      model: models/skab_pump.onnx"
    forced.write_text(EXAMPLE.read_text().replace(model, f"      engine: onnxruntime\n{model}"))
    assert "edge_agent.detect.onnx_small" not in runtime_modules(load_config(forced))


def _line(config: AgentConfig, at: YamlPath) -> str:
    return config.where(at).split(":")[1]


def test_models_with_the_same_keys_share_one_fields_set() -> None:
    config = for_running(load_config(EXAMPLE))
    models = [m for m in _models(config) if m is not config]
    by_keys: dict[frozenset[str], set[str]] = {}
    for model in models:
        fields_set = model.model_fields_set
        assert by_keys.setdefault(frozenset(fields_set), fields_set) is fields_set
    assert len(by_keys) < len(models)
    # A copy with a change gets its own set; the shared one is left as it was.
    sink = config.sinks[0]
    before = set(sink.model_fields_set)
    changed = sink.model_copy(update={"name": "other"})
    assert "name" in changed.model_fields_set
    assert sink.model_fields_set == before


def _models(value: object) -> list[BaseModel]:
    """Every model reachable from ``value`` through fields, lists and dicts."""
    if isinstance(value, BaseModel):
        children = [getattr(value, name) for name in type(value).model_fields]
        return [value, *(m for child in children for m in _models(child))]
    if isinstance(value, (list, tuple)):
        return [m for item in value for m in _models(item)]
    if isinstance(value, dict):
        return [m for item in value.values() for m in _models(item)]
    return []


def test_modbus_registers_run_as_a_table_equal_to_the_list() -> None:
    direct, trimmed = load_config(EXAMPLE), for_running(load_config(EXAMPLE))
    pairs = [
        (before, after)
        for before, after in zip(direct.sources, trimmed.sources, strict=True)
        if isinstance(before, ModbusSourceConfig) and isinstance(after, ModbusSourceConfig)
    ]
    assert pairs
    for before, after in pairs:
        table = after.registers
        assert isinstance(table, RegisterTable) and isinstance(before.registers, list)
        assert len(table.shapes) < len(table)
        assert after == before and before == after
        for was, built in zip(before.registers, table, strict=True):
            assert built == was and repr(built) == repr(was)
            assert built.model_fields_set == was.model_fields_set
        assert after.units() == before.units()


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


def test_a_config_child_parses_without_searching_pydantic_plugins() -> None:
    # The search imports importlib.metadata and reads every package's entry points.
    code = (
        "import sys, pickle; from edge_agent import config_fork as f; f._no_pydantic_plugins();"
        f"c = f.load_for_running({str(EXAMPLE)!r}); "
        "print('importlib.metadata' in sys.modules, type(c.sources[0]).__name__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "ModbusSourceConfig"]
    assert load_config_apart(EXAMPLE).model_dump() == load_config(EXAMPLE).model_dump()
