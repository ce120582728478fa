"""Modbus config: what loads, and a clear error for each mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edge_agent.config import parse_config
from edge_agent.errors import ConfigError
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.endpoint import Endpoint

YAML = """\
sources:
  - type: modbus
    name: press1
    url: tcp://10.0.0.5:502
    registers:
      - {name: temp, address: 3000, data_type: float32, byte_order: CDAB, unit: degC}
      - {name: run, table: coil, address: 0, data_typ: bool}
"""


def make(registers: list[dict[str, Any]], **extra: Any) -> ModbusSourceConfig:
    data = {"type": "modbus", "name": "m", "url": "tcp://h", "registers": registers, **extra}
    return ModbusSourceConfig.model_validate(data)


def test_typo_names_the_yaml_path_line_and_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(YAML, Path("agent.yaml"))
    assert (
        "agent.yaml:7: sources[0].registers[1].data_typ: unknown key (did you mean data_type?)"
        in str(caught.value)
    )


def test_loads_from_yaml_with_durations_and_defaults() -> None:
    text = (
        YAML.replace("data_typ: bool", "data_type: bool") + "    interval: 500ms\n    timeout: 2s\n"
    )
    [source] = parse_config(text, Path("agent.yaml")).sources
    assert isinstance(source, ModbusSourceConfig)
    assert (source.interval, source.timeout, source.device_id, source.max_registers) == (
        0.5,
        2.0,
        1,
        125,
    )
    assert source.registers[0].byte_order == "CDAB"


@pytest.mark.parametrize(
    ("register", "message"),
    [
        ({"name": "a", "table": "coil", "address": 0}, "data_type must be bool"),
        ({"name": "a", "address": 0, "data_type": "bool"}, "needs bit"),
        ({"name": "a", "address": 0, "bit": 3}, "only for data_type bool"),
        (
            {"name": "a", "table": "coil", "address": 0, "data_type": "bool", "bit": 1},
            "not to a coil",
        ),
        ({"name": "a", "address": 65534, "data_type": "float64"}, "runs past address 65535"),
        ({"name": "a", "address": 70000}, "less than or equal to 65535"),
        ({"name": "a", "address": 0, "byte_order": "ABDC"}, "'ABCD', 'BADC', 'CDAB' or 'DCBA'"),
        ({"name": "a", "address": 0, "interval": "100ms"}, "shorter than the source's interval"),
    ],
)
def test_bad_register_is_explained(register: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make([register])


def test_duplicate_names_differing_in_case() -> None:
    with pytest.raises(ValidationError, match="used twice"):
        make([{"name": "Temp", "address": 0}, {"name": "temp", "address": 1}])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("tcp://10.0.0.5", Endpoint("tcp", "10.0.0.5", 502)),
        ("tcp://plc.local:1502", Endpoint("tcp", "plc.local", 1502)),
        ("rtu+tcp://10.0.0.9:4001", Endpoint("rtu+tcp", "10.0.0.9", 4001)),
        ("rtu:///dev/ttyUSB0", Endpoint("rtu", "/dev/ttyUSB0", 0)),
        ("ascii:///dev/ttyUSB1", Endpoint("ascii", "/dev/ttyUSB1", 0)),
        ("ASCII+TCP://10.0.0.9:4002", Endpoint("ascii+tcp", "10.0.0.9", 4002)),
        ("ascii+tcp://10.0.0.9", Endpoint("ascii+tcp", "10.0.0.9", 502)),
    ],
)
def test_urls(url: str, expected: Endpoint) -> None:
    assert Endpoint.parse(url) == expected
    assert make([{"name": "a", "address": 0}], url=url).url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("udp://h:502", "unknown scheme.*expected one of tcp, rtu, rtu\\+tcp, ascii, ascii\\+tcp"),
        ("tcp://:502", "expected a host"),
        ("rtu://", "serial device"),
        ("ascii://", "expected a serial device such as ascii:///dev/ttyUSB0"),
        ("ascii+tcp://:4001", "expected a host, such as ascii\\+tcp://"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make([{"name": "a", "address": 0}], url=url)


def test_needs_at_least_one_register() -> None:
    with pytest.raises(ValidationError, match="at least 1"):
        make([])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"timeout": "0s"}, "greater than 0"),
        ({"backoff": "10s", "backoff_max": "5s"}, "backoff_max must be at least backoff"),
        ({"max_registers": 126}, "less than or equal to 125"),
        ({"serial": {"parity": "mark"}}, "'none', 'even' or 'odd'"),
        ({"timeout": 5}, "expected a duration"),
    ],
)
def test_bad_source_settings_are_explained(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make([{"name": "a", "address": 0}], **extra)


SEVEN_E1 = {"data_bits": 7, "parity": "even"}


def _units(count: int) -> list[dict[str, Any]]:
    return [{"name": f"u{u}", "address": 0, "device_id": u} for u in range(1, count + 1)]


@pytest.mark.parametrize(
    ("url", "units", "extra", "timeout"),
    [
        ("tcp://h", 1, {}, 1.0),  # never more than 1 s
        ("tcp://h", 2, {}, 0.5),  # interval / units
        ("tcp://h", 2, {"retries": 1}, 0.25),  # interval / (units x tries)
        ("tcp://h", 10, {"interval": "5s"}, 0.5),
        ("tcp://h", 20, {}, 0.1),  # never under 100 ms
        # 100 ms + a request and a 125-register reply (263 bytes of 10 bits) at 19200 baud
        ("rtu:///dev/ttyUSB0", 10, {}, 0.1 + 263 * 10 / 19200),
        ("rtu+tcp://h:4001", 10, {"serial": {"baud": 9600}}, 0.1 + 263 * 10 / 9600),
        # ASCII: 2 characters a byte, LRC, ':' and CR LF: 17 for the request, 11 + 2 x 250
        # for the reply, 10 bits each at 7E1
        ("ascii:///dev/ttyUSB0", 10, {"serial": SEVEN_E1}, 0.1 + 528 * 10 / 19200),
        ("ascii+tcp://h:4001", 10, {"serial": {"baud": 9600, **SEVEN_E1}}, 0.1 + 528 * 10 / 9600),
        # 8N2 (11 bits) and max_registers 10: a 2000-bit reply (250 bytes) is still the longest
        (
            "ascii:///dev/ttyUSB0",
            10,
            {"serial": {"stop_bits": 2}, "max_registers": 10},
            0.1 + 528 * 11 / 19200,
        ),
        ("tcp://h", 10, {"timeout": "2s"}, 2.0),  # a timeout set is kept
    ],
)
def test_default_timeout_fits_every_unit_in_a_tick(
    url: str, units: int, extra: dict[str, Any], timeout: float
) -> None:
    config = make(_units(units), url=url, **extra)
    assert config.request_timeout == pytest.approx(timeout)
    assert config.retries == extra.get("retries", 0)


def test_warns_when_silent_units_would_not_fit_in_a_tick() -> None:
    assert make(_units(10)).warnings() == []  # the default timeout fits
    assert make(_units(2), timeout="500ms").warnings() == []  # exactly the interval
    (warning,) = make(_units(3), timeout="500ms", retries=1).warnings()
    assert warning.startswith("m: timeout 0.5 s x (retries 1 + 1) x 3 unit(s) = 3 s exceeds")


def test_check_config_prints_the_warning_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_agent.cli.main import main

    path = tmp_path / "agent.yaml"
    path.write_text(
        "sources:\n  - type: modbus\n    name: line\n    url: tcp://10.0.0.5:502\n"
        "    timeout: 1s\n    retries: 1\n    registers:\n"
        "      - {name: a, address: 0, device_id: 1}\n      - {name: b, address: 0, device_id: 2}\n"
    )
    assert main(["check-config", "-c", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"{path}: warning: line: timeout 1 s x (retries 1 + 1) x 2 unit(s) = 4 s" in err
    assert "ok (1 source(s)" in out
