"""The command line as an integrator meets it: exit codes and messages."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from edge_agent.cli.main import _read_all, main
from edge_agent.errors import EX_CONFIG
from edge_agent.sources.serial.config import SerialSourceConfig
from edge_agent.sources.serial.source import SerialSource
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.store import SignalStore
from tests.conftest import free_port
from tests.sources.serial.pty_pair import SOCAT, Device, PtyPair


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True, timeout=60
    )


def test_check_config_typo_exits_78_with_path_and_line(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("agent:\n  id: gw\ntwin:\n  max_sampels: 10\n")
    result = _run("check-config", "-c", str(config))
    assert result.returncode == EX_CONFIG
    assert f"{config}:4: twin.max_sampels: unknown key (did you mean max_samples?)" in result.stderr


def test_check_config_missing_file_exits_78(tmp_path: Path) -> None:
    result = _run("check-config", "-c", str(tmp_path / "missing.yaml"))
    assert result.returncode == EX_CONFIG
    assert "missing.yaml: cannot read config" in result.stderr


def test_run_with_missing_env_exits_78(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("agent:\n  id: ${EDGE_AGENT_TEST_NOT_SET}\n")
    result = _run("run", "--config", str(config))
    assert result.returncode == EX_CONFIG
    assert "EDGE_AGENT_TEST_NOT_SET is not set" in result.stderr


def test_check_config_ok(tmp_path: Path, capsys: object) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("agent:\n  id: gw\n")
    assert main(["check-config", "-c", str(config)]) == 0


def test_help_lists_commands() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for command in ("run", "check-config", "read-once", "demo"):
        assert command in result.stdout


SOURCE = {
    "type": "modbus",
    "name": "pump1",
    "url": "tcp://127.0.0.1:1",
    "registers": [{"name": "bearing_temp", "address": 0, "data_type": "float32"}],
}


def test_run_with_a_locked_twin_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({"agent": {"data_dir": str(tmp_path)}}))
    other = SignalStore.open(tmp_path / "twin.db", TwinConfig())  # the first agent
    try:
        code = main(["run", "--config", str(config)])
    finally:
        other.close()
    assert code not in (0, None)
    assert "another process" in capsys.readouterr().err
    assert gc.isenabled()  # `run` turns the collector off until READY, and on if it fails


def test_check_config_refuses_a_rule_on_an_unknown_signal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rule = {"name": "hot", "type": "threshold", "signal": "pump1.bearing_tmp", "above": 55}
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({"sources": [SOURCE], "detect": {"rules": [rule]}}))
    code = main(["check-config", "-c", str(config)])
    assert code == 78
    assert "detect.rules[0].signal" in capsys.readouterr().err


def test_check_config_ok_and_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Fine: ok exits 0 with the counts; a typo exits 78 with file:line: path."""
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({"sources": [SOURCE]}))
    assert main(["check-config", "-c", str(config)]) == 0
    assert "ok (1 source(s), 1 signal(s), 0 sink(s))" in capsys.readouterr().out
    config.write_text("sources:\n  - type: modbus\n    name: a\n    url: tcp://h:1\n    regs: []\n")
    assert main(["check-config", "-c", str(config)]) == 78
    assert f"{config}:5: sources[0].regs: unknown key" in capsys.readouterr().err


def test_read_once_dead_sources_of_every_type_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fine: each source type that cannot connect is named, nothing printed, exit 2."""
    port = free_port()
    sources = [
        {**SOURCE, "name": "m1", "url": f"tcp://127.0.0.1:{port}", "timeout": "500ms"},
        {"type": "opcua", "name": "o1", "url": f"opc.tcp://127.0.0.1:{port}",
         "groups": [{"mode": "poll", "nodes": [{"name": "x", "node": "ns=2;s=x"}]}]},
        {"type": "serial", "name": "s1", "port": str(tmp_path / "nope"),
         "parse": {"pattern": "a=(?P<a>.+)"}},
    ]  # fmt: skip
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({"sources": sources}))
    assert main(["read-once", "--config", str(config), "--timeout", "5"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert all(f"{name}: failed:" in out.err for name in ("m1", "o1", "s1"))


async def _stream(pair: PtyPair, stop: asyncio.Event) -> None:
    with Device(pair.device) as device:
        while not stop.is_set():
            device.write(b"A=1.5\n")  # the sensor sends A lines only, never B lines
            await asyncio.sleep(0.1)


@pytest.mark.skipif(SOCAT is None, reason="socat is not installed")
async def test_read_once_prints_what_arrived_from_a_slow_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = {"type": "serial", "name": "s", "interval": "2s", "keep": "latest",
           "parse": {"pattern": r"^(A=(?P<a>\S+)|B=(?P<b>\S+))$"}}  # fmt: skip
    with PtyPair(tmp_path) as pair:
        source = SerialSource(SerialSourceConfig.model_validate({**raw, "port": str(pair.port)}))
        stop = asyncio.Event()
        device = asyncio.create_task(_stream(pair, stop))
        started = time.monotonic()
        try:
            failed = await _read_all([source], 3.0)
        finally:
            stop.set()
            await device
    out = capsys.readouterr()
    assert time.monotonic() - started < 30
    lines = [json.loads(line) for line in out.out.splitlines()]
    assert [r["signal"] for r in lines] == ["s.a"], (failed, out.err)


@pytest.mark.skipif(SOCAT is None, reason="socat is not installed")
async def test_read_once_names_a_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = {"type": "serial", "name": "s", "interval": "2s", "parse": {"pattern": "a=(?P<a>.+)"}}
    with PtyPair(tmp_path) as pair:  # a silent sensor
        source = SerialSource(SerialSourceConfig.model_validate({**raw, "port": str(pair.port)}))
        assert await _read_all([source], 1.0) == 1
    assert "s: failed: timed out" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("engine", "flags", "warned"),
    [
        ("onnxruntime", {"avx2"}, 1),
        ("onnxruntime", {"avx2", "avx512_vnni"}, 0),
        ("auto", {"avx2"}, 0),
    ],
    ids=["ort-avx2", "ort-vnni", "numpy-avx2"],
)
def test_check_config_warns_once_of_an_onnxruntime_model_that_may_saturate(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
    flags: set[str],
    warned: int,
) -> None:
    """The shipped int8 model forced into onnxruntime, on an x86-64 CPU of the test's
    choice: one warning where its u8 x s8 sums may saturate (no VNNI), the WARNING of
    the model's load, not a second line for it; none with VNNI or ``engine: auto``."""
    from edge_agent.detect import u8s8_risk

    monkeypatch.setattr(u8s8_risk, "this_cpu", lambda: (frozenset(flags), "x86_64"))
    model = Path(__file__).resolve().parents[2] / "models" / "skab_pump.onnx"
    signals = ["accelerometer1rms", "accelerometer2rms", "current", "pressure"]
    signals += ["temperature", "thermocouple", "voltage", "volume_flow_raterms"]
    asset = {"name": "pump", "model": str(model), "signals": [f"skab.{s}" for s in signals]}
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({"detect": {"assets": [{**asset, "engine": engine}]}}))
    assert main(["check-config", "-c", str(config)]) == 0
    err = capsys.readouterr().err.splitlines()
    lines = [x for x in err if "skab_pump.onnx: onnxruntime multiplies u8 x s8" in x]
    assert len(lines) == warned, err
    assert all(" WARNING edge_agent.detect.engines: model skab_pump.onnx: " in x for x in lines)
