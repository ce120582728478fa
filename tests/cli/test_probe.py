"""``edge-agent probe`` against a real pymodbus server: every interpretation side by side."""

from __future__ import annotations

import argparse
import asyncio
import struct

import pytest
from pymodbus import FramerType

from edge_agent.cli import probe
from tests.sources.modbus.server import device, tcp_peer


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edge-agent")
    probe.register(parser.add_subparsers(required=True))
    return parser.parse_args(argv)


def row(lines: list[str], address: int, data_type: str) -> list[str]:
    [line] = [ln for ln in lines if ln.split()[:2] == [str(address), data_type]]
    return line.split()[2:]


async def test_probe_prints_each_type_in_each_order(
    port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    registers = [0x4120, 0x0000, 0xFFFF, 0x0001]  # 10.0 as float32, then -1 and 1
    async with tcp_peer([device(1, holding=((2990, 20),))], port) as peer:
        await peer.set(1, "holding", 3000, registers)
        args = parse(["probe", f"tcp://127.0.0.1:{port}", "--holding", "3000", "--count", "4"])
        code = await asyncio.to_thread(args.func, args)
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0] == f"tcp://127.0.0.1:{port} unit 1 holding 3000..3003"
    as_float = [
        struct.unpack(">f", bytes.fromhex(h))[0]
        for h in ("41200000", "20410000", "00004120", "00002041")
    ]
    assert row(lines, 3000, "float32") == [f"{v:.7g}" for v in as_float]
    assert row(lines, 3002, "int16") == ["-1", "-1"]
    assert row(lines, 3003, "uint16") == ["1", "256"]
    assert row(lines, 3002, "uint32") == [
        str(0xFFFF0001),
        str(0xFFFF0100),
        str(0x0001FFFF),
        str(0x0100FFFF),
    ]
    assert row(lines, 3000, "uint64")[0] == str(
        int.from_bytes(struct.pack(">4H", *registers), "big")
    )


async def test_probe_scales(port: int, capsys: pytest.CaptureFixture[str]) -> None:
    async with tcp_peer([device(1)], port) as peer:
        await peer.set(1, "input", 7, [1234])
        args = parse(
            ["probe", f"tcp://127.0.0.1:{port}", "--input", "7", "--count", "1", "--scale", "0.1"]
        )
        assert await asyncio.to_thread(args.func, args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert row(lines, 7, "uint16")[0] == "123.4"


async def test_probe_over_ascii_tcp(port: int, capsys: pytest.CaptureFixture[str]) -> None:
    async with tcp_peer([device(3)], port, framer=FramerType.ASCII) as peer:
        await peer.set(3, "holding", 40, [0xFFFE])
        url = f"ascii+tcp://127.0.0.1:{port}"
        args = parse(["probe", url, "--device-id", "3", "--holding", "40", "--count", "1"])
        assert await asyncio.to_thread(args.func, args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{url} unit 3 holding 40..40"
    assert row(lines, 40, "int16")[0] == "-2"


async def test_probe_bits(port: int, capsys: pytest.CaptureFixture[str]) -> None:
    async with tcp_peer([device(1)], port) as peer:
        await peer.set(1, "coil", 2, [True, False, True])
        args = parse(["probe", f"tcp://127.0.0.1:{port}", "--coils", "0", "--count", "10"])
        assert await asyncio.to_thread(args.func, args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == ["       0  0 0 1 0 1 0 0 0", "       8  0 0"]


async def test_probe_explains_a_refusal(port: int, capsys: pytest.CaptureFixture[str]) -> None:
    async with tcp_peer([device(1, holding=((0, 10),))], port):
        args = parse(["probe", f"tcp://127.0.0.1:{port}", "--holding", "8", "--count", "4"])
        assert await asyncio.to_thread(args.func, args) == 1
    assert "illegal data address" in capsys.readouterr().err


def test_probe_unreachable_and_bad_arguments(port: int, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["probe", f"tcp://127.0.0.1:{port}", "--holding", "0"])
    assert args.func(args) == probe.EX_UNAVAILABLE
    assert "cannot connect" in capsys.readouterr().err
    args = parse(["probe", "udp://h", "--holding", "0"])
    assert args.func(args) == 2
    args = parse(["probe", f"tcp://127.0.0.1:{port}", "--holding", "0", "--count", "126"])
    assert args.func(args) == 2
