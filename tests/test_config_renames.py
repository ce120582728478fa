"""One vocabulary: an old key is an error naming its new key; switches take YAML booleans."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.config import parse_config
from edge_agent.config_errors import RENAMED
from edge_agent.errors import EX_CONFIG, ConfigError
from edge_agent.forward.config import MqttSinkConfig
from edge_agent.forward.sparkplug_config import SparkplugSinkConfig

ROOT = Path(__file__).parent.parent
CASES = Path(__file__).parent / "cases" / "config"

OLD_KEYS = """\
agent: {id: gw}
twin: {synchronous: normal, stale_after: 2}
outbox: {max_bytes: 10MB}
sources:
  - type: modbus
    name: m
    url: rtu:///dev/ttyUSB0
    unit_id: 2
    serial: {baudrate: 9600, bytesize: 7, stopbits: 2}
    registers:
      - {name: a, address: 0, unit_id: 3}
  - type: serial
    name: s
    port: /dev/ttyS0
    stale_after: 5s
    framing: {kind: fixed, length: 4}
    parse: {kind: csv}
    signals: [{name: x, field: 0}]
  - type: opcua
    name: o
    url: opc.tcp://h:4840
    security:
      policy: Basic256Sha256
      mode: Sign
      certificate: a.der
      private_key: a.pem
      private_key_password: x
      trusted_certs: t
    auth: {type: certificate, certificate: u.der, private_key: u.pem, private_key_password: y}
    groups: [{nodes: [{name: n, node: "ns=2;i=1"}]}]
sinks:
  - {type: mqtt, name: q, host: h, retry_initial: 1s, retry_max: 1m}
"""

EXPECTED = [
    ("twin.synchronous", "sync"),
    ("twin.stale_after", "stale_factor"),
    ("outbox.max_bytes", "max_size"),
    ("sources[0].unit_id", "device_id"),
    ("sources[0].serial.baudrate", "baud"),
    ("sources[0].serial.bytesize", "data_bits"),
    ("sources[0].serial.stopbits", "stop_bits"),
    ("sources[0].registers[0].unit_id", "device_id"),
    ("sources[1].stale_after", "lost_after"),
    ("sources[1].framing.kind", "type"),
    ("sources[1].parse.kind", "type"),
    ("sources[2].security.certificate", "cert_file"),
    ("sources[2].security.private_key", "key_file"),
    ("sources[2].security.private_key_password", "key_password"),
    ("sources[2].security.trusted_certs", "trust_dir"),
    ("sources[2].auth.certificate", "cert_file"),
    ("sources[2].auth.private_key", "key_file"),
    ("sources[2].auth.private_key_password", "key_password"),
    ("sinks[0].retry_initial", "backoff"),
    ("sinks[0].retry_max", "backoff_max"),
]


def test_a_config_with_every_old_key_exits_78_naming_each_new_key(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(OLD_KEYS)
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent", "check-config", "-c", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == EX_CONFIG
    lines = result.stderr.splitlines()[1:]  # after "edge-agent: ConfigError:"
    got = {re.sub(r"^.*?:\d+: ", "", line) for line in lines}
    want = {f"{old}: renamed to {new} (see CHANGELOG.md)" for old, new in EXPECTED}
    assert got == want  # every old key named, with its new key, and nothing else
    assert len(EXPECTED) == len(RENAMED)


def test_every_rename_has_a_golden_case_and_a_changelog_line() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    expected = " ".join(p.read_text() for p in CASES.glob("renamed_*.expected"))
    for old, new in RENAMED.items():
        shown = re.sub(r"\[\*\]", "[0]", old)
        assert f"{shown}: renamed to {new} " in expected, old
        assert f"`{old.split('.')[-1]}`" in changelog and f"`{new}`" in changelog, old


def test_an_old_key_is_only_a_rename_where_the_new_key_exists() -> None:
    text = "sources:\n  - {type: modbus, name: m, url: tcp://h:502, stale_after: 5s,\n"
    text += "     registers: [{name: a, address: 0}]}\n"
    with pytest.raises(ConfigError, match=r"sources\[0\]\.stale_after: unknown key$"):
        parse_config(text, Path("c.yaml"))


SWITCHES = """\
sinks:
  - {type: mqtt, name: q, host: h, tls: off, telemetry: on, commands: yes}
  - {type: sparkplug, name: sp, servers: [h], group_id: g, telemetry: off, commands: on}
writes: {mode: on}
detect:
  source_down: off
  assets:
    - {name: p, model: m.onnx, signals: [m.a], reload: off, rebaseline: {auto: on}}
"""


def test_switches_take_unquoted_on_and_off() -> None:
    config = parse_config(SWITCHES, Path("c.yaml"))
    mqtt, sparkplug = config.sinks
    assert isinstance(mqtt, MqttSinkConfig) and isinstance(sparkplug, SparkplugSinkConfig)
    assert (mqtt.tls, mqtt.telemetry, mqtt.commands) == ("off", "on", "on")
    assert (sparkplug.telemetry, sparkplug.commands) == ("off", "on")
    assert config.writes.mode == "on" and config.detect.source_down == "off"
    asset = config.detect.assets[0]
    assert (asset.reload, asset.rebaseline.auto) == ("off", "on")


def test_a_switch_refuses_a_boolean_it_has_no_word_for() -> None:
    text = "sinks:\n  - {type: mqtt, name: q, host: h, tls: on}\n"
    with pytest.raises(ConfigError, match=r"sinks\[0\]\.tls: Input should be 'verify'"):
        parse_config(text, Path("c.yaml"))
