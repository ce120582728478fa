"""Config loading: every error names file, YAML path and line; env substitution; units."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import load_config, parse_config
from edge_agent.config_errors import format_path
from edge_agent.errors import ConfigError
from edge_agent.forward.config import MqttSinkConfig
from edge_agent.schema import format_duration, parse_duration, parse_size

CASES = Path(__file__).parent / "cases" / "config"


def _error(text: str, tmp_path: Path) -> str:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


@pytest.mark.parametrize("case", sorted(CASES.glob("*.yaml")), ids=lambda p: p.stem)
def test_golden_config_errors(case: Path) -> None:
    """Each ``case.yaml`` fails with the lines listed in ``case.expected`` (path-relative)."""
    with pytest.raises(ConfigError) as info:
        load_config(case)
    got = str(info.value).replace(str(case), case.name)
    expected = case.with_suffix(".expected").read_text().strip()
    assert got == expected


def test_typo_names_path_line_and_suggestion(tmp_path: Path) -> None:
    message = _error("agent:\n  id: gw1\n  data_dr: /tmp\n", tmp_path)
    assert (
        message
        == f"{tmp_path / 'agent.yaml'}:3: agent.data_dr: unknown key (did you mean data_dir?)"
    )


def test_wrong_type_names_line(tmp_path: Path) -> None:
    message = _error("twin:\n  flush_interval: 5\n", tmp_path)
    assert ":2: twin.flush_interval: expected a duration" in message


def test_missing_env_variable_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_TEST_UNSET", raising=False)
    message = _error("agent:\n  id: ${EDGE_TEST_UNSET}\n", tmp_path)
    assert ":2: agent.id: environment variable EDGE_TEST_UNSET is not set" in message


def test_env_variable_is_substituted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_TEST_GW", "gw-7")
    path = tmp_path / "a.yaml"
    path.write_text("agent:\n  id: ${EDGE_TEST_GW}\n")
    assert load_config(path).agent.id == "gw-7"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    message = _error("agent:\n  id: [unclosed\n", tmp_path)
    assert "invalid YAML" in message and "agent.yaml:" in message


def test_unknown_source_type(tmp_path: Path) -> None:
    message = _error("sources:\n  - type: modbuss\n    name: a\n", tmp_path)
    assert ":2: sources[0]: unknown type 'modbuss'" in message


def test_duplicate_names(tmp_path: Path) -> None:
    text = "sinks:\n  - {type: jsonl, name: a, path: x}\n  - {type: jsonl, name: a, path: y}\n"
    assert "name 'a' is used twice" in _error(text, tmp_path)


def test_empty_file_is_all_defaults(tmp_path: Path) -> None:
    config = parse_config("", tmp_path / "empty.yaml")
    assert config.sources == [] and config.agent.id == "edge-agent"


def test_relative_paths_resolve_against_config_and_data_dir(tmp_path: Path) -> None:
    config = parse_config("agent:\n  data_dir: data\n", tmp_path / "c.yaml")
    assert config.config_path("m.onnx") == tmp_path.resolve() / "m.onnx"
    assert config.data_path("twin.db") == tmp_path.resolve() / "data" / "twin.db"


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("5s", 5), ("1m", 60), ("2h", 7200), ("7d", 604800)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("bad", [5, "5", "5 sec", True, None, "-1s"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "size"), [("200MB", 200_000_000), ("1GiB", 2**30), ("512KB", 512_000)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_format_path() -> None:
    assert (
        format_path(("sources", 0, "registers", 3, "data_typ"))
        == "sources[0].registers[3].data_typ"
    )


def test_certificate_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    text = (
        "sources:\n  - type: opcua\n    name: line1\n    url: opc.tcp://127.0.0.1:4840\n"
        "    security: {policy: Basic256Sha256, mode: Sign, cert_file: pki/me.der,\n"
        "               key_file: /abs/me.pem, trust_dir: pki/trusted}\n"
        "    groups: [{nodes: [{name: t, node: 'ns=2;s=T'}]}]\n"
    )
    config = parse_config(text, tmp_path / "agent.yaml")
    security = config.sources[0].security  # type: ignore[union-attr]
    assert security.cert_file == str(tmp_path.resolve() / "pki" / "me.der")
    assert security.key_file == "/abs/me.pem"
    assert security.trust_dir == str(tmp_path.resolve() / "pki" / "trusted")


def test_a_section_with_every_key_commented_out_is_empty(tmp_path: Path) -> None:
    config = parse_config("twin:\n  # path: twin.db\nsources:\nsinks:\n", tmp_path / "c.yaml")
    assert config.twin.path == "twin.db" and config.sources == [] and config.sinks == []


def test_tls_files_resolve_against_the_config_folder(tmp_path: Path) -> None:
    text = "sinks:\n  - {type: mqtt, name: up, host: h, ca_file: pki/ca.pem, key_file: /k.pem}\n"
    sink = parse_config(text, tmp_path / "c.yaml").sinks[0]
    assert isinstance(sink, MqttSinkConfig)
    assert sink.ca_file == str(tmp_path.resolve() / "pki" / "ca.pem")
    assert sink.key_file == "/k.pem"


SERIAL = """\
sources:
  - type: serial
    name: s
    port: /dev/x
    framing:
      type: fixed
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
      type: regx
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


SERIAL_NO = """\
sources:
  - type: serial
    name: s
    port: /dev/x
    parse: {pattern: '(?P<a>.)'}
    checksum: no
"""


def _first_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value).replace(str(path), "c.yaml")


def test_typo_in_serial_framing(tmp_path: Path) -> None:
    message = _first_error(tmp_path, SERIAL)
    assert "c.yaml:7: sources[0].framing.lenght: unknown key (did you mean length?)" in message


def test_typo_in_serial_parse_with_default_kind(tmp_path: Path) -> None:
    message = _first_error(tmp_path, SERIAL_PARSE)
    assert "c.yaml:6: sources[0].parse.patern: unknown key (did you mean pattern?)" in message


def test_unknown_parse_kind(tmp_path: Path) -> None:
    message = _first_error(tmp_path, SERIAL_KIND)
    assert "unknown type 'regx'" in message


@pytest.mark.parametrize("text", [RULE_FOR, ASSET_FOR], ids=["rule", "asset_raise_after"])
def test_typo_of_an_aliased_key(tmp_path: Path, text: str) -> None:
    assert "(did you mean for?)" in _first_error(tmp_path, text)


def test_a_bare_no_where_no_switch_is_explains_the_yaml_boolean(tmp_path: Path) -> None:
    """Switches take on/off unquoted (tests/test_config_renames.py); other words still trip."""
    message = _first_error(tmp_path, SERIAL_NO)
    assert "c.yaml:6: sources[0].checksum: Input should be 'none' or 'nmea'" in message
    assert "quote the word" in message


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
    assert expected in _first_error(tmp_path, text)


def test_a_sources_config_names_the_signals_its_source_declares(tmp_path: Path) -> None:
    # The config's own check of rule signals reads the names from the configs (a
    # child's parse builds no source): they must be the sources' catalogue.
    from edge_agent.registry import build_source

    implied = tmp_path / "serial.yaml"
    implied.write_text(
        "sources:\n  - type: serial\n    name: vib2\n    port: /dev/null\n"
        "    parse: {type: regex, pattern: 'R=(?P<RMS>[0-9.]+) T=(?P<temp>[0-9.]+)'}\n"
    )
    example = load_config(Path(__file__).parent.parent / "config.example.yaml", offline=True)
    sources = [*example.sources, *load_config(implied).sources]
    assert {source.type for source in sources} == {"modbus", "opcua", "serial"}
    for source in sources:
        assert source.signal_names() == [i.signal for i in build_source(source).signals()]
    assert sources[-1].signal_names() == ["vib2.rms", "vib2.temp"]
