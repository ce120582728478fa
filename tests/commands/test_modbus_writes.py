"""Writes to a real pymodbus server through the executor, while the source polls it."""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections import Counter
from typing import Any

from edge_agent.commands.config import WritesConfig
from edge_agent.commands.executor import Executor
from edge_agent.commands.policy import Command, Reply
from edge_agent.sources.modbus.source import ModbusSource
from edge_agent.sources.modbus.write import decode, encode
from edge_agent.sources.poll import PollStats
from edge_agent.types import Sample
from tests.commands.modbus_plant import (
    CLAMP_AT,
    REGISTERS,
    WRITES_ON,
    modbus_plant,
    plant_config,
    server_words,
)
from tests.commands.polling import start_polling

RANGES = {
    r["name"]: (r["write"].get("min"), r["write"].get("max")) for r in REGISTERS if "write" in r
}


def _f32_cdab(words: list[int]) -> float:
    return float(struct.unpack(">f", struct.pack(">HH", words[1], words[0]))[0])


def _i32_dcba(words: list[int]) -> int:
    return int(struct.unpack("<i", struct.pack(">HH", words[0], words[1]))[0])


# How the test reads each signal from the server's memory, with its own decoding:
# (function code, address, count, decode)
DEVICE_VIEW: dict[str, tuple[int, int, int, Any]] = {
    "sp_u16": (3, 10, 1, lambda w: w[0] * 0.1),
    "sp_f32": (3, 20, 2, _f32_cdab),
    "sp_i32": (3, 30, 2, _i32_dcba),
    "sp_multi": (3, 40, 1, lambda w: w[0]),
    "run": (1, 5, 1, lambda w: bool(w[0])),
    "run_multi": (1, 6, 1, lambda w: bool(w[0])),
    "clamped": (3, 410, 1, lambda w: w[0]),
}


class Audit:
    """Collects the audit events (the outbox in the agent)."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []

    async def __call__(self, reply: Reply) -> None:
        self.replies.append(reply)


def _executor(source: ModbusSource, audit: Audit) -> Executor:
    known = {info.signal for info in source.signals()}
    return Executor(WRITES_ON, [source], known, audit)


def _script(rng: random.Random, i: int) -> tuple[str, Any, str]:
    """One command: (register name, value, the status it must end in)."""
    name = rng.choice([*RANGES, "temp", "nope"])
    if name in ("temp", "nope"):
        return name, 1, "refused"
    if name.startswith("run"):
        return name, rng.random() < 0.5, "done"
    low, high = RANGES[name]
    span = high - low
    value: Any = rng.uniform(low - 0.1 * span, high + 0.1 * span)
    if name in ("sp_i32", "sp_multi", "locked", "clamped"):
        value = round(value)
    elif name == "sp_u16":
        value = round(value, 1)
    if not low <= value <= high:
        return name, value, "refused"
    if name == "locked" or (name == "clamped" and value > CLAMP_AT):
        return name, value, "failed"
    return name, value, "done"


async def _poll(source: ModbusSource, stats: PollStats, seen: list[Sample]) -> asyncio.Task[None]:
    return await start_polling(source, seen, stats)


async def test_a_thousand_scripted_writes_end_as_scripted_and_polling_goes_on(port: int) -> None:
    async with modbus_plant(port) as (server, trace):
        source = ModbusSource(plant_config(port))
        audit, stats, seen = Audit(), PollStats(), list[Sample]()
        poll = await _poll(source, stats, seen)
        executor = _executor(source, audit)
        rng = random.Random(14)
        loop = asyncio.get_running_loop()
        started, reads_before = loop.time(), stats.reads
        outcomes: Counter[str] = Counter()
        for i in range(1000):
            name, value, status = _script(rng, i)
            reply = await executor.execute(Command(f"c{i}", f"plc.{name}", value, "test"))
            assert (reply.id, reply.status) == (f"c{i}", status), reply
            outcomes[status] += 1
            if status == "done":
                fc, address, count, view = DEVICE_VIEW[name]
                on_device = view(await server_words(server, fc, address, count))
                assert on_device == reply.read_back or abs(on_device - value) < 1e-4 * max(
                    1, abs(value)
                )
                assert abs(float(reply.read_back or 0) - float(value)) <= 1e-4 * max(1, abs(value))
            else:
                assert reply.reason
        elapsed = loop.time() - started
        poll.cancel()
        await asyncio.gather(poll, return_exceptions=True)
    assert len(audit.replies) == 1000 and [r.id for r in audit.replies] == [
        f"c{i}" for i in range(1000)
    ]
    assert min(outcomes.values()) > 50, outcomes
    assert {5, 6, 15, 16} <= set(trace.codes)
    ticks = elapsed / source.config.interval
    assert stats.reads - reads_before >= 0.5 * ticks, (stats.reads, ticks)


async def test_refusals_and_failures_say_why(port: int) -> None:
    async with modbus_plant(port) as (_server, _trace):
        source = ModbusSource(plant_config(port))
        audit, stats, seen = Audit(), PollStats(), list[Sample]()
        poll = await _poll(source, stats, seen)
        executor = _executor(source, audit)
        cases = [
            ("plc.sp_u16", 501, "refused", "outside the allowed range 0..500"),
            ("plc.sp_u16", 12.34, "refused", "not a whole number"),
            ("plc.sp_u16", "12", "refused", "expected a number"),
            ("plc.sp_u16", float("nan"), "refused", "finite"),
            ("plc.run", 2, "refused", "expected a boolean"),
            ("plc.temp", 1, "refused", "not writable"),
            ("plc.nope", 1, "refused", "unknown signal"),
            ("plc.locked", 5, "failed", "device refused the write (Modbus exception 2)"),
            ("plc.clamped", 80, "failed", "read back 50, expected 80"),
            ("plc.sp_u16", 12.3, "done", ""),
        ]
        for i, (signal, value, status, reason) in enumerate(cases):
            assert isinstance(value, int | float | str)
            reply = await executor.execute(Command(str(i), signal, value, "test"))  # type: ignore[arg-type]
            assert (reply.status, reason in reply.reason) == (status, True), reply
        # A broker held it for an offline gateway: older than writes.max_age (30 s).
        old = Command("old", "plc.sp_u16", 7, "test", ts=time.time() - 3600)
        reply = await executor.execute(old)
        assert (reply.status, "expired" in reply.reason) == ("refused", True), reply
        poll.cancel()
        await asyncio.gather(poll, return_exceptions=True)


async def test_concurrent_commands_each_get_one_reply_and_the_rate_limit_holds(port: int) -> None:
    async with modbus_plant(port) as (_server, _trace):
        source = ModbusSource(plant_config(port))
        audit, stats, seen = Audit(), PollStats(), list[Sample]()
        poll = await _poll(source, stats, seen)
        executor = Executor(
            WritesConfig.model_validate({"mode": "on", "min_interval": "60s"}),
            [source], {i.signal for i in source.signals()}, audit,
        )  # fmt: skip
        names = ["sp_u16", "sp_multi", "run", "sp_i32"]
        commands = [Command(f"c{i}", f"plc.{names[i % 4]}", i % 2, "test") for i in range(40)]
        replies = await asyncio.gather(*(executor.execute(c) for c in commands))
        poll.cancel()
        await asyncio.gather(poll, return_exceptions=True)
    assert [r.id for r in replies] == [c.id for c in commands]
    done = [r for r in replies if r.status == "done"]
    assert sorted(r.signal for r in done) == sorted(f"plc.{n}" for n in names)
    refused = [r for r in replies if r.status == "refused"]
    assert len(refused) == 36
    assert all("in progress" in r.reason or "rate limit" in r.reason for r in refused)


async def test_a_redelivered_id_is_not_written_twice(port: int) -> None:
    async with modbus_plant(port) as (_server, trace):
        source = ModbusSource(plant_config(port))
        audit, stats, seen = Audit(), PollStats(), list[Sample]()
        poll = await _poll(source, stats, seen)
        executor = _executor(source, audit)
        first = await executor.execute(Command("same", "plc.sp_multi", 9, "test"))
        writes = trace.codes.count(16)
        again = await executor.execute(Command("same", "plc.sp_multi", 9, "test"))
        poll.cancel()
        await asyncio.gather(poll, return_exceptions=True)
    assert first == again and first.status == "done"
    assert trace.codes.count(16) == writes and len(audit.replies) == 1


def test_encoding_is_the_inverse_of_the_codec() -> None:
    config = plant_config(502)
    for register in config.registers:
        if register.write is None or register.data_type == "bool":
            continue
        for value in (0, 1, 12.5, 100, -7):
            try:
                words = encode(register, value)
            except ValueError:
                continue
            assert abs(decode(register, words) - value) < 1e-5, (register.name, value)


async def test_writes_are_refused_while_writes_are_off(port: int) -> None:
    source = ModbusSource(plant_config(port))
    audit = Audit()
    executor = Executor(WritesConfig(), [source], set(), audit)
    reply = await executor.execute(Command("x", "plc.sp_u16", 1, "test"))
    assert (reply.status, "writes are off" in reply.reason) == ("refused", True)
    assert audit.replies == [reply]
