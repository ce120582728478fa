"""The serial source over TCP, against a real device server played by the test."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_agent.errors import SourceError
from edge_agent.sources.poll import PollStats, Source, poll_forever
from edge_agent.sources.serial.config import SerialSourceConfig
from edge_agent.sources.serial.source import SerialSource
from edge_agent.types import Quality, Sample
from tests.sources.serial.device_server import DeviceServer, make_tcp
from tests.sources.serial.pty_pair import VIB, WAIT, collect, values

LINE = b"VIB,rms=0.31,peak=1.20,temp=41.8\r\n"


async def test_lines_from_a_device_server(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.sources.serial.source")
    async with DeviceServer() as server:
        source = make_tcp(server, on_open="START\r\n")
        async with source:
            assert await server.read_until(b"\r\n") == b"START\r\n"
            server.write(LINE[:10])  # a frame split across TCP segments is one frame
            await asyncio.sleep(0.05)
            server.write(LINE[10:] + b"VIB,rms=2,peak=3,temp=4\r\n")
            got = await collect(source, 6)
    assert [s.value for s in got if s.signal == "vib1.rms"] == [0.31, 2.0]
    assert {s.quality for s in got} == {Quality.GOOD}
    assert f"vib1: opened {server.url}" in caplog.messages  # no baud: the server sets the line


async def test_opened_is_said_once_at_info_however_often_it_reopens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge_agent.sources.serial.source")
    async with DeviceServer() as server:
        source = make_tcp(server)
        for _ in range(3):  # as the poll loop reopens after each loss
            async with source:
                await server.client()
    opened = [r for r in caplog.records if r.getMessage().startswith("vib1: opened")]
    assert [r.levelno for r in opened] == [logging.INFO, logging.DEBUG, logging.DEBUG]


async def test_socket_url_is_pyserials_spelling_of_the_same() -> None:
    async with DeviceServer() as server:
        source = make_tcp(server, port=f"socket://127.0.0.1:{server.port}")
        async with source:
            await server.client()
            server.write(LINE)
            assert values(await collect(source, 3))["vib1.rms"] == 0.31


async def test_a_server_not_listening_is_a_source_error() -> None:
    with socket.socket() as sock:  # a free port, closed again: nobody listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    raw = {"type": "serial", "name": "x", "port": f"tcp://127.0.0.1:{port}"}
    config = SerialSourceConfig.model_validate(raw | {"parse": {"pattern": VIB}})
    with pytest.raises(SourceError, match=r"cannot open tcp://127\S+: Connection refused$"):
        async with SerialSource(config):
            pass


async def test_the_server_closing_is_a_lost_link() -> None:
    async with DeviceServer() as server:
        source = make_tcp(server)
        async with source:
            await server.client()
            server.write(LINE)
            await collect(source, 3)
            await server.stop()
            with pytest.raises(SourceError, match=r"lost tcp://.*closed the connection"):
                await collect(source, 1)


async def test_the_server_closing_during_a_request_is_a_lost_link() -> None:
    async with DeviceServer() as server:
        source = make_tcp(server, request="MEAS?\n", response_timeout="10s")
        async with source:
            task = asyncio.create_task(source.read())
            assert await server.read_until(b"\n") == b"MEAS?\n"
            await server.stop()
            with pytest.raises(SourceError, match="lost"):
                await task


async def test_garbage_from_the_server_gives_bad_samples_and_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.sources.serial.decode")
    async with DeviceServer() as server:
        source = make_tcp(server)
        async with source:
            await server.client()
            server.write(LINE)
            await collect(source, 3)
            for _ in range(50):
                server.write(b"#@!\n\xff\xfe\x00\nVIB,rms=zz,peak=2,temp=3\n")
            server.write(b"VIB,rms=4,peak=5,temp=6\n")
            got = await collect(source, 453)
    assert [s.value for s in got[:-3] if s.signal == "vib1.rms"] == [None] * 150
    assert sum(s.quality is Quality.BAD for s in got) == 350  # peak, temp of rms=zz are GOOD
    assert values(got[-3:]) == {"vib1.rms": 4.0, "vib1.peak": 5.0, "vib1.temp": 6.0}
    assert source.counters["no_match"] == source.counters["undecodable"] == 50
    assert source.counters["bad_value"] == 50
    # 150 bad frames in a row, then a good one: one warning, one recovery.
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    assert "readable again after 150 bad frames" in caplog.records[1].getMessage()


async def _until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not check():  # noqa: ASYNC110 (the loop's state, not an event)
            await asyncio.sleep(0.01)


async def test_poll_loop_reconnects_when_the_server_restarts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    got: list[Sample] = []
    stats = PollStats()
    caplog.set_level(logging.INFO, logger="edge_agent.sources.poll")
    async with DeviceServer() as server:
        source: Source = make_tcp(server, interval="20ms")
        task = asyncio.create_task(poll_forever(source, got.extend, stats, cap=0.2))
        try:
            await server.client()
            server.write(b"VIB,rms=1.5,peak=0,temp=0\n")
            await _until(lambda: any(s.value == 1.5 for s in got))
            await server.stop()  # the device server reboots
            await _until(lambda: any(s.value is None for s in got))
            await _until(lambda: "cannot open" in stats.last_error)
            await server.start()
            await server.client()
            server.write(b"VIB,rms=2.5,peak=0,temp=0\n")
            await _until(lambda: any(s.value == 2.5 for s in got))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert stats.outages == 1
    assert server.connections == 2
    rms = [s.value for s in got if s.signal == "vib1.rms"]
    assert rms[0] == 1.5 and rms[-1] == 2.5 and None in rms  # BAD while the server was down
    lost = [m for m in caplog.messages if "connection lost" in m]
    assert len(lost) == 1, caplog.messages  # not once per refused reconnect
    assert "closed the connection" in lost[0]
    assert any("reconnected after" in m for m in caplog.messages)


@pytest.mark.parametrize(
    ("port", "message"),
    [
        ("rfc2217://10.0.0.7:4001", "RFC 2217 is not supported"),
        ("udp://10.0.0.7:4001", "expected a device path such as /dev/ttyUSB0 or tcp://"),
        ("tcp://10.0.0.7", "expected a host and a port"),
        ("tcp://:4001", "expected a host and a port"),
        ("tcp://10.0.0.7:99999", "expected a host and a port"),
        ("socket://10.0.0.7:4001?logging=debug", "takes no path or options"),
    ],
)
def test_endpoint_errors_are_clear(port: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SerialSourceConfig.model_validate(
            {"type": "serial", "name": "s", "port": port, "parse": {"pattern": VIB}}
        )


def _tcp_config(**keys: object) -> SerialSourceConfig:
    raw = {"type": "serial", "name": "s", "port": "tcp://10.0.0.7:4001", "parse": {"pattern": VIB}}
    return SerialSourceConfig.model_validate(raw | keys)


def test_line_settings_given_for_an_endpoint_are_warned_of() -> None:
    assert _tcp_config().warnings() == []
    (warning,) = _tcp_config(baud=19200, parity="even").warnings()
    assert warning.startswith("s: baud, parity ignored for tcp://10.0.0.7:4001: set the line")
    local = _tcp_config(port="/dev/ttyUSB0", baud=19200)
    assert local.warnings() == []


def test_check_config_prints_the_warning_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_agent.cli.main import main

    path = tmp_path / "agent.yaml"
    path.write_text(
        "sources:\n  - type: serial\n    name: vib1\n    port: tcp://10.0.0.7:4001\n"
        f"    baud: 19200\n    parse: {{pattern: '{VIB}'}}\n"
    )
    assert main(["check-config", "-c", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"{path}: warning: vib1: baud ignored for tcp://10.0.0.7:4001" in err
    assert "ok (1 source(s)" in out
