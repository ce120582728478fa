"""The Modbus source over ASCII framing: a socat pty pair (a serial line) and ASCII over TCP.

The peers are pymodbus servers with the ASCII framer: they decode nothing but
``:``-started, LRC-checked hex lines, so a reply proves the source sent ASCII.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymodbus import FramerType

from edge_agent.errors import SourceError
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.source import ModbusSource
from edge_agent.types import Quality, Sample
from tests.sources.modbus.server import Peer, Silence, device, start_rtu, start_tcp

REGISTERS = [
    {"name": "f", "address": 10, "data_type": "float32", "device_id": 1},
    {"name": "run", "table": "coil", "address": 3, "data_type": "bool", "device_id": 1},
    {"name": "stop", "table": "coil", "address": 4, "data_type": "bool", "device_id": 1},
    {"name": "count", "address": 0, "data_type": "uint16", "device_id": 7},
]


def config(url: str, registers: list[dict[str, Any]], **extra: Any) -> ModbusSourceConfig:
    return ModbusSourceConfig.model_validate(
        {
            "type": "modbus",
            "name": "bus",
            "url": url,
            "timeout": "300ms",
            "backoff": "1m",
            # not ASCII's usual 7E1: a pty refuses parity and 7 data bits (EINVAL)
            "serial": {"baud": 9600, "parity": "none", "data_bits": 8, "stop_bits": 2},
            "registers": registers,
            **extra,
        }
    )


async def fill(peer: Peer) -> None:
    await peer.set(1, "holding", 10, list(struct.unpack(">2H", struct.pack(">f", -2.5))))
    await peer.set(1, "coil", 3, [True, False])
    await peer.set(7, "holding", 0, [4242])


def values(samples: list[Sample]) -> dict[str, float | None]:
    return {s.signal: s.value for s in samples}


EXPECTED = {"bus.f": -2.5, "bus.run": 1.0, "bus.stop": 0.0, "bus.count": 4242.0}


async def test_ascii_serial_line_reads_registers_and_coils(line: tuple[str, str]) -> None:
    server_tty, client_tty = line
    peer = await start_rtu([device(1), device(7)], server_tty, framer=FramerType.ASCII)
    try:
        await fill(peer)
        source = ModbusSource(config(f"ascii://{client_tty}", REGISTERS, pause="5ms"))
        async with source:
            samples = await source.read()
    finally:
        await peer.stop()
    assert values(samples) == EXPECTED
    assert sorted(peer.wire.requests) == [(1, 1, 3, 2), (1, 3, 10, 2), (7, 3, 0, 1)]


async def test_ascii_over_tcp_reads_registers_and_coils(port: int) -> None:
    peer = await start_tcp([device(1), device(7)], port, framer=FramerType.ASCII)
    try:
        await fill(peer)
        source = ModbusSource(config(f"ascii+tcp://127.0.0.1:{port}", REGISTERS))
        async with source:
            samples = await source.read()
    finally:
        await peer.stop()
    assert values(samples) == EXPECTED


@pytest.mark.parametrize("kind", ["ascii", "ascii+tcp"])
async def test_dead_unit_reads_bad_and_the_other_keeps_reading(
    kind: str, line: tuple[str, str], port: int
) -> None:
    silence = Silence()
    devices = [device(1), device(2, silence=silence)]
    server_tty, client_tty = line
    if kind == "ascii":
        peer = await start_rtu(devices, server_tty, silence, framer=FramerType.ASCII)
        url = f"ascii://{client_tty}"
    else:
        peer = await start_tcp(devices, port, FramerType.ASCII, silence)
        url = f"ascii+tcp://127.0.0.1:{port}"
    regs = [{"name": f"u{u}", "address": 0, "device_id": u} for u in (1, 2)]
    try:
        await peer.set(1, "holding", 0, [11])
        source = ModbusSource(config(url, regs))
        async with source:
            ticks = [await source.read() for _ in range(2)]
    finally:
        await peer.stop()
    first = {s.signal: s for s in ticks[0]}
    assert (first["bus.u2"].quality, first["bus.u2"].value) == (Quality.BAD, None)
    for samples in ticks:
        assert values(samples)["bus.u1"] == 11.0
    assert [u for u, *_ in peer.wire.requests].count(2) == 1  # then backed off


async def test_an_rtu_device_does_not_answer_ascii(line: tuple[str, str]) -> None:
    server_tty, client_tty = line
    peer = await start_rtu([device(1)], server_tty)  # RTU framing on the line
    try:
        source = ModbusSource(config(f"ascii://{client_tty}", [{"name": "a", "address": 0}]))
        async with source:
            with pytest.raises(SourceError, match="no unit answers on ascii://"):
                await source.read()
    finally:
        await peer.stop()
    assert peer.wire.requests == []


async def test_rtu_and_ascii_on_one_serial_line_are_one_source(line: tuple[str, str]) -> None:
    _, client_tty = line
    first = ModbusSource(config(f"rtu://{client_tty}", [{"name": "a", "address": 0}]))
    second = ModbusSource(
        config(f"ascii://{client_tty}", [{"name": "b", "address": 0}]).model_copy(
            update={"name": "other"}
        )
    )
    async with first:
        with pytest.raises(SourceError, match="already polled by source 'bus'"):
            async with second:
                pass


NOISE = b":Z\x85"  # line noise holding a ':' (an ASCII frame's start), then bytes that are not hex


def noisy_answer(line: bytes, words: list[int]) -> bytes:
    """Noise, then a correct ASCII reply to the fc 3 request ``line`` (an independent peer)."""
    request = bytes.fromhex(line[1:-4].decode())  # unit, fc, address, count; LRC and CR LF cut
    count = int.from_bytes(request[4:6], "big")
    payload = request[:2] + bytes([2 * count]) + struct.pack(f">{count}H", *words[:count])
    lrc = -sum(payload) & 0xFF
    return NOISE + b":" + payload.hex().upper().encode() + f"{lrc:02X}\r\n".encode()


@contextlib.asynccontextmanager
async def noisy_line_peer(tty: str, words: list[int]) -> AsyncIterator[None]:
    """A device on a pty that puts noise before each of its replies."""
    fd = os.open(tty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    heard = bytearray()

    def on_read() -> None:
        with contextlib.suppress(BlockingIOError):
            heard.extend(os.read(fd, 1024))
        while (end := heard.find(b"\r\n")) >= 0:
            os.write(fd, noisy_answer(bytes(heard[: end + 2]), words))
            del heard[: end + 2]

    loop = asyncio.get_running_loop()
    loop.add_reader(fd, on_read)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        os.close(fd)


@contextlib.asynccontextmanager
async def noisy_tcp_peer(port: int, words: list[int]) -> AsyncIterator[None]:
    """A serial device server whose line puts noise before each reply."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                writer.write(noisy_answer(await reader.readuntil(b"\r\n"), words))
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("kind", ["ascii", "ascii+tcp"])
async def test_noise_before_a_reply_does_not_lose_it(
    kind: str, line: tuple[str, str], port: int
) -> None:
    """A ':' in noise starts a frame that is not hex: pymodbus raised and lost the reply."""
    server_tty, client_tty = line
    if kind == "ascii":
        peer, url = noisy_line_peer(server_tty, [7, 8]), f"ascii://{client_tty}"
    else:
        peer, url = noisy_tcp_peer(port, [7, 8]), f"ascii+tcp://127.0.0.1:{port}"
    regs = [{"name": "a", "address": 0}, {"name": "b", "address": 1}]
    async with peer:
        source = ModbusSource(config(url, regs))
        async with source:
            ticks = [await source.read() for _ in range(3)]
    assert [values(samples) for samples in ticks] == [{"bus.a": 7.0, "bus.b": 8.0}] * 3


@pytest.mark.parametrize("kind", ["ascii", "ascii+tcp"])
async def test_writes_a_register_and_a_coil(kind: str, line: tuple[str, str], port: int) -> None:
    server_tty, client_tty = line
    if kind == "ascii":
        peer = await start_rtu([device(1)], server_tty, framer=FramerType.ASCII)
        url = f"ascii://{client_tty}"
    else:
        peer = await start_tcp([device(1)], port, FramerType.ASCII)
        url = f"ascii+tcp://127.0.0.1:{port}"
    regs = [
        {"name": "sp", "address": 10, "scale": 0.1, "write": {"min": 0, "max": 100}},
        {"name": "run", "table": "coil", "address": 5, "data_type": "bool", "write": {}},
    ]
    try:
        source = ModbusSource(config(url, regs))
        async with source:
            setpoint = await source.write("bus.sp", 42.5)
            run = await source.write("bus.run", True)
            samples = await source.read()
    finally:
        await peer.stop()
    assert setpoint.actual == pytest.approx(42.5) and run.actual == 1.0  # read back
    assert values(samples) == {"bus.sp": pytest.approx(42.5), "bus.run": 1.0}
