"""OpcuaSource recovery: server restart, expired session; no duplicates, paths resolved again."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import pytest

from edge_agent.errors import SourceError
from edge_agent.sources.opcua.config import OpcuaSourceConfig
from edge_agent.sources.opcua.source import OpcuaSource
from edge_agent.types import Sample
from tests.conftest import free_port
from tests.sources.opcua.server import T0, Proxy, TestServer


@pytest.fixture(scope="module")
def own_server() -> Iterator[TestServer]:
    """A server of this module's own: these tests stop and restart it."""
    server = TestServer(free_port())
    server.start()
    yield server
    server.close()


def config(url: str) -> OpcuaSourceConfig:
    return OpcuaSourceConfig.model_validate(
        {
            "type": "opcua",
            "name": "r",
            "url": url,
            "interval": "50ms",
            "timeout": "1s",
            "groups": [
                {
                    "mode": "subscribe",
                    "publishing_interval": "50ms",
                    "nodes": [{"name": "level", "path": "0:Objects/2:Plant/2:Pump1/2:Level"}],
                },
                {"nodes": [{"name": "temp", "path": "0:Objects/2:Plant/2:Pump1/2:Temperature"}]},
            ],
        }
    )


async def read_until(src: OpcuaSource, want: int, limit: float = 10.0) -> list[Sample]:
    samples: list[Sample] = []
    end = asyncio.get_running_loop().time() + limit
    while len(samples) < want and asyncio.get_running_loop().time() < end:
        samples.extend(await src.read())
        await asyncio.sleep(0.05)
    return samples


async def read_until_lost(src: OpcuaSource, limit: float = 10.0) -> list[Sample]:
    """Read until the source reports the loss; what it read before is returned."""
    samples: list[Sample] = []
    end = asyncio.get_running_loop().time() + limit
    with pytest.raises(SourceError):
        while asyncio.get_running_loop().time() < end:
            samples.extend(await src.read())
            await asyncio.sleep(0.05)
    return samples


async def test_server_restart_resubscribes_resolves_again_without_duplicates(
    own_server: TestServer,
) -> None:
    src = OpcuaSource(config(own_server.url))
    await own_server.arun(own_server.write, "Level", 5.0, 0, T0)
    await own_server.arun(own_server.write, "Temperature", 20.0, 0, T0)
    async with src:
        before = await read_until(src, 2)
        await asyncio.to_thread(own_server.stop)
        await read_until_lost(src)
    # The restarted server has new NodeIds behind the same browse paths, and the
    # same values with the same source times as before (nothing new to record).
    await asyncio.to_thread(own_server.start, 1)
    await own_server.arun(own_server.write, "Level", 5.0, 0, T0)
    await own_server.arun(own_server.write, "Temperature", 20.0, 0, T0)
    async with src:
        repeated = await read_until(src, 1, limit=1.0)
        later = T0 + dt.timedelta(seconds=10)
        await own_server.arun(own_server.write, "Level", 6.0, 0, later)
        await own_server.arun(own_server.write, "Temperature", 21.0, 0, later)
        after = await read_until(src, 2)
    assert sorted((s.signal, s.value) for s in before) == [("r.level", 5.0), ("r.temp", 20.0)]
    assert repeated == []
    assert sorted((s.signal, s.value, s.ts) for s in after) == [
        ("r.level", 6.0, later.timestamp()),
        ("r.temp", 21.0, later.timestamp()),
    ]


async def test_expired_session_is_a_source_error_then_recovers(own_server: TestServer) -> None:
    src = OpcuaSource(config(own_server.url))
    async with src:
        await read_until(src, 2)
        await own_server.arun(own_server.close_sessions)
        await read_until_lost(src)
    async with src:
        stamp = dt.datetime.now(dt.UTC)
        await own_server.arun(own_server.write, "Level", 7.0, 0, stamp)
        after = await read_until(src, 1)
    assert ("r.level", 7.0) in [(s.signal, s.value) for s in after]


async def test_dropped_network_is_detected_and_recovered(own_server: TestServer) -> None:
    proxy = Proxy(own_server.port)
    await proxy.start()
    cfg = config(f"opc.tcp://127.0.0.1:{proxy.port}/test")
    src = OpcuaSource(cfg)
    try:
        async with src:
            await read_until(src, 2)
            proxy.freeze()
            await read_until_lost(src, limit=20.0)
        async with src:
            stamp = dt.datetime.now(dt.UTC)
            await own_server.arun(own_server.write, "Level", 8.0, 0, stamp)
            after = await read_until(src, 1)
    finally:
        await proxy.close()
    assert ("r.level", 8.0) in [(s.signal, s.value) for s in after]


async def test_the_reconnect_pause_keeps_a_stop_that_comes_with_a_refusal() -> None:
    """The pause probes a refusing port every ``backoff``; with wait_for around the probe
    (3.11) a stop landing as the refusal came back was lost, and the pause waited out
    its whole backoff (up to ``backoff_max``) before the poll loop saw it."""
    source = OpcuaSource(config(f"opc.tcp://127.0.0.1:{free_port()}"))  # nothing listens
    stopped = 0
    for turns in range(20):  # the stop lands on each turn of the loop through a probe
        probe = asyncio.create_task(source._listening())
        for _ in range(turns):
            await asyncio.sleep(0)
        if probe.done():
            break
        probe.cancel()
        await asyncio.wait([probe], timeout=5)
        assert probe.cancelled(), f"a stop {turns} loop turns into the probe was lost"
        stopped += 1
    assert stopped >= 2  # the sweep reached into the probe, not only its start
