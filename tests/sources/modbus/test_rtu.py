"""The Modbus source over RTU: a socat pty pair (a shared RS-485 line) and RTU over TCP."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from pymodbus import FramerType

from edge_agent.errors import SourceError
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.source import ModbusSource
from edge_agent.types import Quality
from tests.sources.modbus.server import Silence, device, start_rtu, tcp_peer


def config(url: str, registers: list[dict[str, Any]], **extra: Any) -> ModbusSourceConfig:
    return ModbusSourceConfig.model_validate(
        {
            "type": "modbus",
            "name": "bus",
            "url": url,
            "timeout": "300ms",
            "retries": 0,
            "serial": {"baud": 9600, "parity": "none", "stop_bits": 2},  # a pty refuses parity
            "registers": registers,
            **extra,
        }
    )


async def test_rtu_several_units_on_one_line(line: tuple[str, str]) -> None:
    server_tty, client_tty = line
    peer = await start_rtu([device(1), device(7)], server_tty)
    try:
        await peer.set(1, "holding", 10, list(struct.unpack(">2H", struct.pack("<f", 1.25))))
        await peer.set(7, "input", 3, [0x8001])
        regs = [
            {"name": "f", "address": 10, "data_type": "float32", "byte_order": "DCBA"},
            {"name": "flag", "table": "input", "address": 3, "data_type": "bool", "bit": 15,
             "device_id": 7},
            {"name": "low", "table": "input", "address": 3, "data_type": "bool", "bit": 0,
             "device_id": 7},
        ]  # fmt: skip
        source = ModbusSource(config(f"rtu://{client_tty}", regs, pause="5ms"))
        async with source:
            samples = await source.read()
    finally:
        await peer.stop()
    assert {s.signal: s.value for s in samples} == {"bus.f": 1.25, "bus.flag": 1.0, "bus.low": 1.0}
    assert sorted(peer.wire.requests) == [(1, 3, 10, 2), (7, 4, 3, 1)]


async def test_dead_unit_on_the_line_does_not_stall_the_others(line: tuple[str, str]) -> None:
    server_tty, client_tty = line
    silence = Silence()
    peer = await start_rtu([device(1), device(2, silence=silence), device(3)], server_tty, silence)
    try:
        await peer.set(1, "holding", 0, [11])
        await peer.set(3, "holding", 0, [33])
        regs = [{"name": f"u{u}", "address": 0, "device_id": u} for u in (1, 2, 3)]
        source = ModbusSource(config(f"rtu://{client_tty}", regs, backoff="1m"))
        async with source:
            ticks = [await source.read() for _ in range(3)]
    finally:
        await peer.stop()
    assert {s.signal: s.quality for s in ticks[0]}["bus.u2"] is Quality.BAD
    for samples in ticks:
        by_name = {s.signal: s for s in samples}
        assert (by_name["bus.u1"].value, by_name["bus.u3"].value) == (11.0, 33.0)
        # marked BAD again only once per BAD_REPEAT slot of its outage
        assert "bus.u2" not in by_name or by_name["bus.u2"].quality is Quality.BAD
    assert [u for u, *_ in peer.wire.requests].count(2) == 1


async def test_silent_line_raises_source_error(line: tuple[str, str]) -> None:
    _, client_tty = line  # nothing listens on the other end
    source = ModbusSource(config(f"rtu://{client_tty}", [{"name": "a", "address": 0}]))
    async with source:
        with pytest.raises(SourceError, match="no unit answers"):
            await source.read()


async def test_missing_serial_port_raises_source_error(tmp_path: Path) -> None:
    source = ModbusSource(config(f"rtu://{tmp_path}/ttyUSB9", [{"name": "a", "address": 0}]))
    with pytest.raises(SourceError):
        async with source:
            pass


async def test_rtu_over_tcp(port: int) -> None:
    async with tcp_peer([device(4)], port, framer=FramerType.RTU) as peer:
        await peer.set(4, "holding", 20, list(struct.unpack(">4H", struct.pack(">q", -(2**40)))))
        regs = [{"name": "big", "address": 20, "data_type": "int64", "device_id": 4}]
        source = ModbusSource(config(f"rtu+tcp://127.0.0.1:{port}", regs))
        async with source:
            samples = await source.read()
    assert [(s.signal, s.value) for s in samples] == [("bus.big", float(-(2**40)))]


async def test_one_serial_line_one_source(line: tuple[str, str]) -> None:
    server_tty, client_tty = line
    peer = await start_rtu([device(1)], server_tty)
    first = ModbusSource(config(f"rtu://{client_tty}", [{"name": "a", "address": 0}]))
    second = ModbusSource(
        config(f"rtu://{client_tty}", [{"name": "b", "address": 1}]).model_copy(
            update={"name": "other"}
        )
    )
    try:
        async with first:
            with pytest.raises(SourceError, match="already polled by source 'bus'"):
                async with second:
                    pass
        async with second:  # the line is free again
            assert [s.signal for s in await second.read()] == ["other.b"]
    finally:
        await peer.stop()


async def test_rtu_exceptions_and_a_hole_in_a_block(line: tuple[str, str]) -> None:
    server_tty, client_tty = line
    peer = await start_rtu([device(1, holding=((0, 10), (20, 10)))], server_tty)
    try:
        await peer.set(1, "holding", 5, [50])
        await peer.set(1, "holding", 25, [250])
        regs = [
            {"name": "a", "address": 5},
            {"name": "b", "address": 25},
            {"name": "gone", "address": 40},
        ]
        source = ModbusSource(config(f"rtu://{client_tty}", regs, register_gap=20))
        async with source:
            ticks = [await source.read() for _ in range(2)]  # learning may take two ticks
            peer.wire.requests.clear()
            ticks.append(await source.read())
    finally:
        await peer.stop()
    for samples in ticks:
        assert {s.signal: s.value for s in samples} == {
            "bus.a": 50.0,
            "bus.b": 250.0,
            "bus.gone": None,
        }
    assert sorted(peer.wire.requests) == [(1, 3, 5, 1), (1, 3, 25, 1)]


async def test_rtu_server_stopped_and_restarted(line: tuple[str, str]) -> None:
    server_tty, client_tty = line
    peer = await start_rtu([device(1)], server_tty)
    source = ModbusSource(config(f"rtu://{client_tty}", [{"name": "a", "address": 0}]))
    try:
        async with source:
            await peer.set(1, "holding", 0, [1])
            assert [s.value for s in await source.read()] == [1.0]
            await peer.stop()
            with pytest.raises(SourceError, match="no unit answers"):
                await source.read()
        peer = await start_rtu([device(1)], server_tty)
        await peer.set(1, "holding", 0, [2])
        async with source:
            assert [s.value for s in await source.read()] == [2.0]
    finally:
        await peer.stop()
