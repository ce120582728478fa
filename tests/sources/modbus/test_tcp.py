"""The Modbus source against a real pymodbus server over TCP on loopback."""

from __future__ import annotations

import asyncio
import math
import random
import struct
from typing import Any

import pytest
from pymodbus.constants import ExcCodes

from edge_agent.errors import SourceError
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.source import ModbusSource
from edge_agent.types import BAD_REPEAT, Quality, Sample
from tests.sources.modbus.server import Silence, device, start_tcp, tcp_peer


def config(port: int, registers: list[dict[str, Any]], **extra: Any) -> ModbusSourceConfig:
    return ModbusSourceConfig.model_validate(
        {
            "type": "modbus",
            "name": "Press1",
            "url": f"tcp://127.0.0.1:{port}",
            "timeout": "200ms",
            "retries": 0,
            "registers": registers,
            **extra,
        }
    )


def values(samples: list[Sample]) -> dict[str, float | None]:
    return {s.signal: s.value for s in samples}


def words(fmt: str, value: float) -> list[int]:
    raw = struct.pack(">" + fmt, value)
    return list(struct.unpack(f">{len(raw) // 2}H", raw))


async def test_reads_holding_input_and_bits(port: int) -> None:
    async with tcp_peer([device(1)], port) as peer:
        await peer.set(1, "holding", 0, words("h", -12))
        await peer.set(1, "holding", 1, words("H", 65000))
        await peer.set(1, "holding", 4, words("f", 2.5))
        await peer.set(1, "input", 7, words("H", 1234))
        await peer.set(1, "coil", 5, [True])
        await peer.set(1, "discrete", 2, [True])
        source = ModbusSource(
            config(
                port,
                [
                    {"name": "A", "address": 0, "data_type": "int16"},
                    {"name": "b", "address": 1},
                    {"name": "f", "address": 4, "data_type": "float32", "unit": "bar"},
                    {"name": "t", "table": "input", "address": 7, "scale": 0.1, "offset": -10},
                    {"name": "c", "table": "coil", "address": 5, "data_type": "bool"},
                    {"name": "d", "table": "discrete", "address": 2, "data_type": "bool"},
                    {"name": "d0", "table": "discrete", "address": 0, "data_type": "bool"},
                ],
            )
        )
        async with source:
            samples = await source.read()
    assert values(samples) == {
        "press1.a": -12.0,
        "press1.b": 65000.0,
        "press1.f": 2.5,
        "press1.t": pytest.approx(113.4),
        "press1.c": 1.0,
        "press1.d": 1.0,
        "press1.d0": 0.0,
    }
    assert {s.quality for s in samples} == {Quality.GOOD}


async def test_signals_catalogue_from_config_without_io(port: int) -> None:
    source = ModbusSource(
        config(
            port,
            [{"name": "F", "address": 4, "unit": "bar", "interval": "5s", "asset": "pump"}],
            asset="line",
        )
    )
    [info] = source.signals()
    assert (info.signal, info.source, info.interval, info.unit, info.asset) == (
        "press1.f", "Press1", 5.0, "bar", "pump"
    )  # fmt: skip


async def test_unreachable_device_raises_source_error(port: int) -> None:
    source = ModbusSource(config(port, [{"name": "a", "address": 0}]))
    with pytest.raises(SourceError, match="cannot connect"):
        async with source:
            pass


async def test_exception_response_gives_bad_only_for_that_block(port: int) -> None:
    async with tcp_peer([device(1, holding=((0, 10),))], port) as peer:
        await peer.set(1, "holding", 3, [42])
        source = ModbusSource(
            config(port, [{"name": "ok", "address": 3}, {"name": "gone", "address": 500}])
        )
        async with source:
            samples = await source.read()
    by_name = {s.signal: s for s in samples}
    assert by_name["press1.ok"].value == 42.0
    assert by_name["press1.gone"].quality is Quality.BAD
    assert by_name["press1.gone"].value is None


async def test_server_killed_mid_poll_then_restarted(port: int) -> None:
    peer = await start_tcp([device(1)], port)
    await peer.set(1, "holding", 0, [7])
    source = ModbusSource(config(port, [{"name": "a", "address": 0}]))
    try:
        async with source:
            assert values(await source.read()) == {"press1.a": 7.0}
            await peer.stop()
            with pytest.raises(SourceError):
                await source.read()
        peer = await start_tcp([device(1)], port)
        await peer.set(1, "holding", 0, [8])
        async with source:
            assert values(await source.read()) == {"press1.a": 8.0}
    finally:
        await peer.stop()


async def test_silent_unit_beside_answering_unit(port: int) -> None:
    silence = Silence()
    devices = [device(1), device(2, silence=silence)]
    async with tcp_peer(devices, port, silence=silence) as peer:
        await peer.set(1, "holding", 0, [5])
        source = ModbusSource(
            config(
                port,
                [{"name": "alive", "address": 0}, {"name": "dead", "address": 0, "device_id": 2}],
            )
        )
        async with source:
            first = await source.read()
            second = await source.read()
    for samples in (first, second):
        by_name = {s.signal: s for s in samples}
        assert by_name["press1.alive"].value == 5.0
        assert by_name["press1.dead"].quality is Quality.BAD


async def test_a_silent_unit_reads_bad_at_once_then_only_once_per_bad_repeat(port: int) -> None:
    """A dead unit among live ones: its signals BAD at the failed try and at the first tick
    of its outage, then once per BAD_REPEAT slot, not at every tick (the live one: every
    tick). Counted over 20 reads, with the unit's backoff longer than the test."""
    silence = Silence()
    devices = [device(1), device(2, silence=silence)]
    registers = [{"name": "alive", "address": 0}] + [
        {"name": f"dead{i}", "address": i, "device_id": 2} for i in range(5)
    ]
    async with tcp_peer(devices, port, silence=silence) as peer:
        await peer.set(1, "holding", 0, [5])
        source = ModbusSource(config(port, registers, backoff="60s", backoff_max="60s"))
        async with source:
            reads = [await source.read() for _ in range(20)]
    assert all(values(r)["press1.alive"] == 5.0 for r in reads)
    dead = [s for r in reads for s in r if s.signal.startswith("press1.dead")]
    assert all(s.quality is Quality.BAD for s in dead)
    assert {s.signal for s in reads[0]} == {"press1.alive", *(f"press1.dead{i}" for i in range(5))}
    slots = {math.floor(s.ts / BAD_REPEAT) for r in reads[1:] for s in r}
    assert len(dead) <= 5 * (1 + len(slots)) <= 15  # not 5 x 20


async def test_every_unit_silent_raises_source_error(port: int) -> None:
    silence = Silence()
    async with tcp_peer([device(1, silence=silence)], port, silence=silence):
        source = ModbusSource(config(port, [{"name": "a", "address": 0}]))
        async with source:
            with pytest.raises(SourceError, match="no unit answers"):
                await source.read()


async def test_blocks_on_the_wire(port: int) -> None:
    registers: list[dict[str, Any]] = [{"name": f"r{a}", "address": a} for a in range(40)]
    registers += [
        {"name": f"f{a}", "address": a, "data_type": "float32"} for a in range(100, 120, 2)
    ]
    registers += [
        {"name": f"c{a}", "table": "coil", "address": a, "data_type": "bool"}
        for a in range(0, 60, 3)
    ]
    async with tcp_peer([device(1)], port) as peer:
        await peer.set(1, "holding", 39, [39])
        await peer.set(1, "holding", 118, words("f", -1.5))
        source = ModbusSource(config(port, registers))
        async with source:
            samples = await source.read()
    assert sorted(peer.wire.requests) == [(1, 1, 0, 58), (1, 3, 0, 40), (1, 3, 100, 20)]
    assert len(samples) == len(registers)
    assert values(samples)["press1.r39"] == 39.0
    assert values(samples)["press1.f118"] == -1.5


async def test_illegal_hole_inside_a_block_is_found_and_remembered(port: int) -> None:
    holed = device(1, holding=((0, 10), (20, 10)))
    async with tcp_peer([holed], port) as peer:
        await peer.set(1, "holding", 5, [50])
        await peer.set(1, "holding", 25, [250])
        regs = [{"name": "a", "address": 5}, {"name": "b", "address": 25}]
        source = ModbusSource(config(port, regs, register_gap=20))
        async with source:
            first = await source.read()
            peer.wire.requests.clear()
            second = await source.read()
    assert values(first) == values(second) == {"press1.a": 50.0, "press1.b": 250.0}
    assert sorted(peer.wire.requests) == [(1, 3, 5, 1), (1, 3, 25, 1)]


async def test_refused_address_reads_bad_and_is_left_out(port: int) -> None:
    async with tcp_peer([device(1, holding=((0, 10),))], port) as peer:
        await peer.set(1, "holding", 2, [2, 3])
        regs = [
            {"name": "a", "address": 2},
            {"name": "b", "address": 3},
            {"name": "x", "address": 12},
        ]
        source = ModbusSource(config(port, regs))
        async with source:
            first = await source.read()
            peer.wire.requests.clear()
            second = await source.read()
    for samples in (first, second):
        assert values(samples) == {"press1.a": 2.0, "press1.b": 3.0, "press1.x": None}
    assert peer.wire.requests == [(1, 3, 2, 2)]


async def test_slow_signals_are_read_only_when_due(port: int) -> None:
    async with tcp_peer([device(1)], port) as peer:
        regs = [{"name": "fast", "address": 0}, {"name": "slow", "address": 200, "interval": "1h"}]
        source = ModbusSource(config(port, regs))
        async with source:
            first = await source.read()
            peer.wire.requests.clear()
            second = await source.read()
    assert set(values(first)) == {"press1.fast", "press1.slow"}
    assert set(values(second)) == {"press1.fast"}
    assert peer.wire.requests == [(1, 3, 0, 1)]


async def test_silent_unit_is_backed_off_on_its_own(port: int) -> None:
    silence = Silence()
    async with tcp_peer([device(1), device(2, silence=silence)], port, silence=silence) as peer:
        regs = [{"name": "alive", "address": 0}, {"name": "dead", "address": 0, "device_id": 2}]
        source = ModbusSource(config(port, regs, backoff="10s", retries=1))
        async with source:
            for _ in range(3):
                await source.read()
    asked = [unit for unit, *_ in peer.wire.requests]
    assert asked.count(1) == 3
    assert asked.count(2) == 2  # one request and its one retry, then rest


async def test_connection_lost_while_waiting_for_an_answer(port: int) -> None:
    silence = Silence()
    peer = await start_tcp([device(1, silence=silence)], port, silence=silence)
    source = ModbusSource(config(port, [{"name": "a", "address": 0}], timeout="30s"))
    async with source:
        reading = asyncio.create_task(source.read())
        await peer.wire.arrived.wait()
        await peer.stop()
        with pytest.raises(SourceError, match="lost"):
            await reading


async def test_device_limit_below_125_is_learned_as_a_cut(port: int) -> None:
    async def at_most_60(fc: int, _start: int, _address: int, count: int, *_: object) -> Any:
        return ExcCodes.ILLEGAL_VALUE if count > 60 else None  # as many devices answer

    short = device(1)
    short.action = at_most_60
    async with tcp_peer([short], port) as peer:
        await peer.set(1, "holding", 99, [99])
        source = ModbusSource(config(port, [{"name": f"r{a}", "address": a} for a in range(100)]))
        async with source:
            first = await source.read()
            peer.wire.requests.clear()
            second = await source.read()
    assert values(first) == values(second)
    assert values(second)["press1.r99"] == 99.0
    assert None not in values(second).values()
    assert sorted(peer.wire.requests) == [(1, 3, 0, 50), (1, 3, 50, 50)]


GARBAGE = {
    # MBAP header echoing the request's transaction id, then a PDU that does not fit
    "too few registers": lambda req: req[:2] + b"\x00\x00\x00\x05" + req[6:7] + b"\x03\x02\x00\x01",
    "another function": lambda req: (
        req[:2] + b"\x00\x00\x00\x07" + req[6:7] + b"\x04\x04\x00\x01\x00\x02"
    ),
}


@pytest.mark.parametrize("kind", list(GARBAGE))
async def test_garbled_reply_reads_bad(port: int, kind: str) -> None:
    done = asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.read(260):
            writer.write(GARBAGE[kind](request))
        writer.close()
        done.set()

    server = await asyncio.start_server(answer, "127.0.0.1", port)
    async with server:
        source = ModbusSource(config(port, [{"name": "a", "address": 0, "data_type": "int32"}]))
        async with source:
            [sample] = await source.read()
        await done.wait()  # the peer saw the source hang up
    assert (sample.signal, sample.quality, sample.value) == ("press1.a", Quality.BAD, None)


async def test_noise_instead_of_replies_is_a_lost_link(port: int) -> None:
    done = asyncio.Event()

    async def noise(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(260):
            writer.write(b"\xde\xad\xbe\xef" * 5)
        writer.close()
        done.set()

    server = await asyncio.start_server(noise, "127.0.0.1", port)
    async with server:
        source = ModbusSource(config(port, [{"name": "a", "address": 0}]))
        async with source:
            with pytest.raises(SourceError):
                await source.read()
        await done.wait()


def valid_ranges(rng: random.Random) -> list[tuple[int, int]]:
    ranges, address = [], rng.randrange(0, 5)
    while address < 200:
        count = rng.randrange(3, 40)
        ranges.append((address, count))
        address += count + rng.randrange(1, 15)
    return ranges


@pytest.mark.parametrize("seed", range(4))
async def test_random_holes_are_learned_exactly(port: int, seed: int) -> None:
    rng = random.Random(seed)
    ranges = valid_ranges(rng)
    valid = {a for start, count in ranges for a in range(start, start + count)}
    spots = sorted(rng.sample(range(0, 220), 30))
    types = {a: rng.choice(["uint16", "uint32"]) for a in spots}
    regs = [{"name": f"s{a}", "address": a, "data_type": t} for a, t in types.items()]
    async with tcp_peer([device(1, holding=ranges)], port) as peer:
        for start, count in ranges:
            await peer.set(1, "holding", start, list(range(start, start + count)))
        source = ModbusSource(config(port, regs, register_gap=8))
        async with source:
            for _ in range(6):  # each tick may learn one more fence
                await source.read()
            peer.wire.requests.clear()
            final = values(await source.read())
    for a, data_type in types.items():
        width = 2 if data_type == "uint32" else 1
        readable = all(x in valid for x in range(a, a + width))
        expected = (a if width == 1 else (a << 16) | (a + 1)) if readable else None
        assert final[f"press1.s{a}"] == expected, (a, data_type)
    for _, _, start, count in peer.wire.requests:  # nothing refused any more
        assert all(x in valid for x in range(start, start + count))


async def test_gateway_without_its_target_backs_that_unit_off(port: int) -> None:
    async def target_gone(*_: object) -> Any:
        return ExcCodes.GATEWAY_NO_RESPONSE  # what a TCP gateway says for a dead RTU unit

    behind = device(3)
    behind.action = target_gone
    async with tcp_peer([device(1), behind], port) as peer:
        await peer.set(1, "holding", 0, [10])
        regs = [{"name": "alive", "address": 0}, {"name": "gone", "address": 0, "device_id": 3}]
        source = ModbusSource(config(port, regs, backoff="1m"))
        async with source:
            ticks = [values(await source.read()) for _ in range(3)]
    assert ticks[0] == {"press1.alive": 10.0, "press1.gone": None}
    # Later ticks: marked BAD again only once per BAD_REPEAT slot, never a value.
    assert all(t["press1.alive"] == 10.0 and t.get("press1.gone") is None for t in ticks)
    assert [unit for unit, *_ in peer.wire.requests].count(3) == 1


async def test_bits_of_a_refused_register_are_left_out_together(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with tcp_peer([device(1, holding=((0, 10),))], port) as peer:
        regs = [{"name": "ok", "address": 9}]
        regs += [{"name": f"b{i}", "address": 12, "data_type": "bool", "bit": i} for i in range(16)]
        source = ModbusSource(config(port, regs))
        async with source:
            first = values(await source.read())
            peer.wire.requests.clear()
            second = values(await source.read())
    assert first == second == {"press1.ok": 0.0} | {f"press1.b{i}": None for i in range(16)}
    assert peer.wire.requests == [(1, 3, 9, 1)]
    assert len([r for r in caplog.records if "refuses holding 12" in r.message]) == 1
