"""Review of config.py: YAML path, line and suggestion for typos deep in nested models."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.errors import ConfigError

SERIAL = """\
sources:
  - type: serial
    name: s
    port: /dev/x
    framing:
      kind: fixed
      lenght: 8
    parse: {pattern: '(?P<a>.)'}
"""

SERIAL_PARSE = """\
sources:
  - type: serial
    name: s
    port: /dev/x
    parse:
      patern: '(?P<a>.)'
"""

SERIAL_KIND = """\
sources:
  - type: serial
    name: s
    port: /dev/x
    parse:
      kind: regx
      pattern: '(?P<a>.)'
"""

RULE_FOR = """\
detect:
  rules:
    - name: hot
      type: threshold
      signal: a.b
      above: 1
      fro: 5m
"""

ASSET_FOR = """\
detect:
  assets:
    - name: pump1
      model: m.onnx
      signals: [a.b]
      raise_after: {k: 3, n: 5, fro: 0s}
"""

MQTT_OFF = """\
sinks:
  - type: mqtt
    name: m
    host: h
    tls: off
"""


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value).replace(str(path), "c.yaml")


def test_typo_in_serial_framing(tmp_path: Path) -> None:
    message = _error(tmp_path, SERIAL)
    assert "c.yaml:7: sources[0].framing.lenght: unknown key (did you mean length?)" in message


def test_typo_in_serial_parse_with_default_kind(tmp_path: Path) -> None:
    message = _error(tmp_path, SERIAL_PARSE)
    assert "c.yaml:6: sources[0].parse.patern: unknown key (did you mean pattern?)" in message


def test_unknown_parse_kind(tmp_path: Path) -> None:
    message = _error(tmp_path, SERIAL_KIND)
    assert "unknown kind 'regx'" in message


@pytest.mark.parametrize("text", [RULE_FOR, ASSET_FOR], ids=["rule", "asset_raise_after"])
def test_typo_of_an_aliased_key(tmp_path: Path, text: str) -> None:
    assert "(did you mean for?)" in _error(tmp_path, text)


def test_bare_off_explains_the_yaml_boolean(tmp_path: Path) -> None:
    message = _error(tmp_path, MQTT_OFF)
    assert "quote" in message.lower() or "false" in message.lower()


NESTED_OK = {
    "register": (
        "sources:\n  - type: modbus\n    name: m\n    url: tcp://h:502\n    registers:\n"
        "      - {name: a, address: 0}\n      - {name: b, address: 1}\n"
        "      - name: c\n        address: 2\n        data_typ: float32\n",
        "c.yaml:10: sources[0].registers[2].data_typ: unknown key (did you mean data_type?)",
    ),
    "sink_tls_value": (
        "sinks:\n  - type: mqtt\n    name: m\n    host: h\n    tls: verfy\n",
        "c.yaml:5: sinks[0].tls: Input should be 'verify', 'no-verify' or 'off'",
    ),
    "opcua_node": (
        "sources:\n  - type: opcua\n    name: o\n    url: opc.tcp://h:4840\n    groups:\n"
        "      - mode: poll\n        nodes:\n          - {name: a, node: 'ns=2;s=x'}\n"
        "          - {name: b, nod: 'ns=2;s=y'}\n",
        "c.yaml:9: sources[0].groups[0].nodes[1].nod: unknown key (did you mean node?)",
    ),
    "rule_key": (
        "detect:\n  rules:\n    - name: r\n      type: rate\n      signal: a.b\n"
        "      max_change: 1\n      ovr: 5s\n",
        "c.yaml:7: detect.rules[0].ovr: unknown key (did you mean over?)",
    ),
    "rule_alias_value": (
        "detect:\n  rules:\n    - {name: r, type: threshold, signal: a.b, above: 1, for: 5}\n",
        "c.yaml:3: detect.rules[0].for: expected a duration",
    ),
    "serial_signal": (
        "sources:\n  - type: serial\n    name: s\n    port: /dev/x\n"
        "    parse: {pattern: '(?P<a>.)'}\n    signals:\n      - {name: a, uint: V}\n",
        "c.yaml:7: sources[0].signals[0].uint: unknown key (did you mean unit?)",
    ),
}


@pytest.mark.parametrize("case", sorted(NESTED_OK))
def test_nested_typo_names_path_line_and_suggestion(tmp_path: Path, case: str) -> None:
    """Fine today: these typos are placed right (kept as regressions)."""
    text, expected = NESTED_OK[case]
    assert expected in _error(tmp_path, text)
