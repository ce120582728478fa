"""Writes to a real asyncua server through the executor, on the session the source polls with."""

from __future__ import annotations

import asyncio
import random
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from edge_agent.commands.config import WritesConfig
from edge_agent.commands.executor import Executor
from edge_agent.commands.policy import Command, Reply
from edge_agent.sources.opcua.config import OpcuaSourceConfig
from edge_agent.sources.opcua.source import OpcuaSource
from edge_agent.sources.poll import PollStats
from edge_agent.types import Sample
from tests.commands.polling import start_polling
from tests.conftest import free_port
from tests.sources.opcua.server import NS, TestServer, ua

WRITES_ON = WritesConfig.model_validate({"mode": "on", "min_interval": "0s"})
# name, initial value, type, writable on the server, write block in our config
NODES: list[tuple[str, Any, str, bool, dict[str, Any]]] = [
    ("Float", 1.5, "Float", True, {"type": "Float", "min": -100, "max": 100}),
    ("Double", 2.5, "Double", True, {"type": "Double", "min": 0, "max": 1000}),
    ("Int16", 3, "Int16", True, {"type": "Int16", "min": -500, "max": 500}),
    ("Switch", False, "Boolean", True, {"type": "Boolean"}),
    ("Locked", 9.0, "Double", False, {"type": "Double", "min": 0, "max": 100}),
]


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    """A plain (no security) asyncua server with the plant and the nodes written here."""
    test_server = TestServer(free_port())
    test_server.start()
    test_server.run(_add_nodes, test_server)
    yield test_server
    test_server.close()


async def _add_nodes(test_server: TestServer) -> None:
    server = test_server.server
    assert server is not None
    idx = await server.get_namespace_index(NS)
    folder = await server.nodes.objects.add_object(
        ua.NodeId("Writes", idx), ua.QualifiedName("Writes", idx)
    )
    for name, value, kind, writable, _ in NODES:
        variant = ua.Variant(value, getattr(ua.VariantType, kind))
        var = await folder.add_variable(
            ua.NodeId(f"W.{name}", idx), ua.QualifiedName(name, idx), variant
        )
        if writable:
            await var.set_writable()
        test_server.nodes[name] = var


def _config(url: str) -> OpcuaSourceConfig:
    nodes = [{"name": n, "node": f"ns=2;s=W.{n}", "write": w} for n, _, _, _, w in NODES]
    nodes.append({"name": "temp", "path": "0:Objects/2:Plant/2:Pump1/2:Temperature"})
    return OpcuaSourceConfig.model_validate(
        {
            "type": "opcua",
            "name": "ua",
            "url": url,
            "interval": "50ms",
            "groups": [{"nodes": nodes}],
        }
    )


class Audit:
    def __init__(self) -> None:
        self.replies: list[Reply] = []

    async def __call__(self, reply: Reply) -> None:
        self.replies.append(reply)


def _script(rng: random.Random) -> tuple[str, Any, str]:
    name, _, _, _, write = rng.choice(NODES)
    if write["type"] == "Boolean":
        return name, rng.random() < 0.5, "done"
    low, high = write["min"], write["max"]
    value: Any = rng.uniform(low - 0.1 * (high - low), high + 0.1 * (high - low))
    if write["type"] == "Int16":
        value = round(value)
    if not low <= value <= high:
        return name, value, "refused"
    return name, value, "failed" if name == "Locked" else "done"


def _held(kind: str, value: Any) -> float:
    if kind == "Float":
        return float(struct.unpack("<f", struct.pack("<f", value))[0])
    return float(value)


async def test_a_thousand_scripted_writes_end_as_scripted_while_polling(server: TestServer) -> None:
    source = OpcuaSource(_config(server.url))
    audit, stats, seen = Audit(), PollStats(), list[Sample]()
    poll = await start_polling(source, seen, stats)
    executor = Executor(WRITES_ON, [source], {i.signal for i in source.signals()}, audit)
    rng, outcomes = random.Random(7), Counter[str]()
    loop = asyncio.get_running_loop()
    started, reads_before = loop.time(), stats.reads
    kinds = {n: w["type"] for n, _, _, _, w in NODES}
    for i in range(1000):
        name, value, status = _script(rng)
        reply = await executor.execute(Command(f"c{i}", f"ua.{name.lower()}", value, "test"))
        assert (reply.id, reply.status) == (f"c{i}", status), reply
        outcomes[status] += 1
        if status == "done":
            on_server = await server.arun(server.nodes[name].read_value)
            assert float(on_server) == reply.read_back == _held(kinds[name], value)
        else:
            assert reply.reason
    reads, ticks = stats.reads - reads_before, (loop.time() - started) / 0.05
    poll.cancel()
    await asyncio.gather(poll, return_exceptions=True)
    assert len(audit.replies) == 1000 and min(outcomes.values()) > 50, outcomes
    assert reads >= 0.5 * ticks, (reads, ticks)  # the session's polls went on meanwhile


async def test_refusals_and_failures_say_why(server: TestServer) -> None:
    source = OpcuaSource(_config(server.url))
    executor = Executor(WRITES_ON, [source], {i.signal for i in source.signals()}, Audit())
    before = await executor.execute(Command("0", "ua.float", 1.0, "test"))
    assert (before.status, "not connected" in before.reason) == ("failed", True)
    async with source:
        cases = [
            ("ua.int16", 2.5, "refused", "not a whole number"),
            ("ua.float", 101, "refused", "outside the allowed range"),
            ("ua.switch", 0.5, "refused", "expected a boolean"),
            ("ua.temp", 1.0, "refused", "not writable"),
            ("ua.locked", 5.0, "failed", "server refused the write (Bad"),
            ("ua.float", 0.1, "done", ""),
        ]
        for i, (signal, value, status, reason) in enumerate(cases):
            reply = await executor.execute(Command(f"r{i}", signal, value, "test"))
            assert (reply.status, reason in reply.reason) == (status, True), reply


async def test_a_write_held_by_the_server_ends_when_its_source_stops_under_it() -> None:
    """What a reload does to an OPC UA source whose write outlasts ``reload.SETTLE``: the
    source stops, its session closes under the write, and the write still gets its one
    reply (failed, with the reason), instead of hanging or none."""
    test_server = TestServer(free_port())
    test_server.start()
    test_server.run(_add_nodes, test_server)
    held, release = threading.Event(), threading.Event()

    def hold(node: Any, attr: Any, value: Any) -> None:  # on the server's thread: it stalls
        held.set()
        release.wait(30)
        node.attributes[attr].value = value

    try:
        assert test_server.server is not None
        test_server.server.set_attribute_value_setter(test_server.nodes["Double"].nodeid, hold)
        source = OpcuaSource(_config(test_server.url))
        poll = await start_polling(source, [], PollStats())
        executor = Executor(WRITES_ON, [source], {i.signal for i in source.signals()}, Audit())
        write = asyncio.create_task(executor.execute(Command("held", "ua.double", 42.0, "t")))
        assert await asyncio.to_thread(held.wait, 30)
        assert await executor.settle([source], 0.2) == 1  # still on the device
        poll.cancel()  # the reload stops the source anyway
        await asyncio.gather(poll, return_exceptions=True)
        async with asyncio.timeout(30):
            reply = await write
    finally:
        release.set()
        test_server.close()
    assert (reply.status, reply.read_back) == ("failed", None)
    assert reply.reason.startswith(f"ua: cannot talk to {test_server.url}"), reply
    assert await executor.settle([source], 0.2) == 0
