"""OpcuaSource subscriptions against a real asyncua server."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import pytest
from asyncua import ua as _ua

from edge_agent.sources.opcua.config import OpcuaSourceConfig
from edge_agent.sources.opcua.source import OpcuaSource
from edge_agent.types import Quality, Sample
from tests.sources.opcua.server import T0, TestServer, pki, shared_server

__all__ = ["pki", "shared_server"]  # fixtures
ua: Any = _ua


def config(url: str, group: dict[str, Any], **extra: object) -> OpcuaSourceConfig:
    group = {"mode": "subscribe", "publishing_interval": "50ms", **group}
    raw = {"type": "opcua", "name": "sub", "url": url, "interval": "50ms", "groups": [group]}
    return OpcuaSourceConfig.model_validate({**raw, **extra})


def pump(*names: str) -> list[dict[str, str]]:
    return [{"name": n.lower(), "node": f"ns=2;s=Pump1.{n}"} for n in names]


async def collect(
    src: OpcuaSource, until: Callable[[list[Sample]], bool], limit: float = 10.0
) -> list[Sample]:
    """Read every 50 ms until ``until(samples)`` holds (or the limit passes)."""
    samples: list[Sample] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not until(samples) and loop.time() < end:
        samples.extend(await src.read())
        await asyncio.sleep(0.05)
    return samples


def values(samples: list[Sample], signal: str) -> list[float | None]:
    return [s.value for s in samples if s.signal == signal]


async def test_initial_values_then_changes_with_source_time(shared_server: TestServer) -> None:
    write = shared_server.write
    await shared_server.arun(write, "Temperature", 30.0, 0, T0)
    async with OpcuaSource(
        config(shared_server.url, {"nodes": pump("Temperature", "Broken")})
    ) as src:
        first = await collect(src, lambda s: len(s) >= 2)
        later = T0 + dt.timedelta(seconds=1)
        await shared_server.arun(write, "Temperature", 31.0, 0, later)
        second = await collect(src, lambda s: len(s) >= 1)
    by_signal = {s.signal: s for s in first}
    assert (by_signal["sub.temperature"].value, by_signal["sub.temperature"].ts) == (
        30.0,
        T0.timestamp(),
    )
    assert by_signal["sub.broken"].quality is Quality.BAD
    assert [(s.value, s.ts) for s in second] == [(31.0, later.timestamp())]


async def test_absolute_deadband_hides_small_moves(shared_server: TestServer) -> None:
    group = {"nodes": pump("Pressure"), "deadband": {"type": "absolute", "value": 1.0}}
    await shared_server.arun(shared_server.write, "Pressure", 50.0)
    async with OpcuaSource(config(shared_server.url, group)) as src:
        await collect(src, lambda s: len(s) >= 1)
        for value in (50.4, 50.8, 52.0):
            await shared_server.arun(shared_server.write, "Pressure", value)
        seen = await collect(src, lambda s: 52.0 in values(s, "sub.pressure"))
    assert values(seen, "sub.pressure") == [52.0]


async def test_default_queue_keeps_every_change_of_a_publishing_interval(
    shared_server: TestServer,
) -> None:
    # deadband 0 and no sampling_interval or queue_size: the defaults follow the interval.
    group = {
        "nodes": pump("Level"),
        "publishing_interval": "1s",
        "deadband": {"type": "absolute", "value": 0},
    }
    async with OpcuaSource(config(shared_server.url, group)) as src:
        await collect(src, lambda s: len(s) >= 1)
        for n in range(39):
            await shared_server.arun(shared_server.write, "Level", 1000.0 + n)
            await asyncio.sleep(0.1)  # one change per default sampling interval
        seen = await collect(src, lambda s: 1038.0 in values(s, "sub.level"))
    assert values(seen, "sub.level") == [1000.0 + n for n in range(39)]


async def test_refused_deadband_is_dropped_for_that_node_only(
    shared_server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The test server refuses data-change filters on Boolean nodes, as servers must.
    group = {"nodes": pump("Running", "Pressure"), "deadband": {"type": "absolute", "value": 1}}
    await shared_server.arun(shared_server.write, "Running", False)
    async with OpcuaSource(config(shared_server.url, group)) as src:
        await collect(src, lambda s: len(s) >= 2)
        await shared_server.arun(shared_server.write, "Running", True)
        seen = await collect(src, lambda s: 1.0 in values(s, "sub.running"))
        problems = src.problems()
    assert values(seen, "sub.running") == [1.0]
    assert problems == {}
    ours = [r for r in caplog.records if r.name.startswith("edge_agent")]
    assert [r.getMessage() for r in ours if r.levelno >= logging.WARNING] == [
        "sub.running: server refused the deadband for node ns=2;s=Pump1.Running "
        "(not a numeric node?); it is subscribed without one"
    ]


async def test_percent_deadband_is_requested_from_the_server(shared_server: TestServer) -> None:
    # asyncua's server accepts but does not implement percent deadbands, so check what it was asked.
    group = {"nodes": pump("Level"), "deadband": {"type": "percent", "value": 2.5}}
    async with OpcuaSource(config(shared_server.url, group)):
        filters = await shared_server.arun(_server_filters, shared_server)
    assert (2, 2.5) in [(f.DeadbandType, f.DeadbandValue) for f in filters if f is not None]


async def _server_filters(server: TestServer) -> list[Any]:
    assert server.server is not None
    subs = server.server.iserver.subscription_service.subscriptions.values()
    return [m.filter for s in subs for m in s.monitored_item_srv._monitored_items.values()]


async def test_queue_size_keeps_changes_between_publishes(shared_server: TestServer) -> None:
    group = {"nodes": pump("Count"), "queue_size": 10, "publishing_interval": "1s"}
    async with OpcuaSource(config(shared_server.url, group)) as src:
        await collect(src, lambda s: len(s) >= 1)
        for n in (100, 101, 102):
            await shared_server.arun(shared_server.write, "Count", n)
            await asyncio.sleep(0.01)  # distinct source timestamps
        seen = await collect(src, lambda s: 102.0 in values(s, "sub.count"))
    assert values(seen, "sub.count") == [100.0, 101.0, 102.0]


async def test_silent_subscription_is_rebuilt(
    shared_server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = config(shared_server.url, {"nodes": pump("Running")}, silence_timeout="500ms")
    await shared_server.arun(shared_server.write, "Running", False, 0, T0)
    async with OpcuaSource(cfg) as src:
        first = await collect(src, lambda s: len(s) >= 1)
        # The server forgets the subscription without telling the client: it goes silent.
        await shared_server.arun(_drop_all_subscriptions, shared_server)
        rebuilt = await collect(src, lambda s: False, limit=1.5)
        await shared_server.arun(shared_server.write, "Running", True)
        after = await collect(src, lambda s: len(s) >= 1)
    assert [s.value for s in first] == [0.0]
    assert rebuilt == []  # the rebuilt subscription's initial value is not a duplicate
    assert [s.value for s in after] == [1.0]
    assert "no publish response" in caplog.text


async def _drop_all_subscriptions(server: TestServer) -> None:
    assert server.server is not None
    service = server.server.iserver.subscription_service
    await service.delete_subscriptions(list(service.subscriptions))


async def test_subscription_ended_by_server_is_rebuilt(
    shared_server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with OpcuaSource(config(shared_server.url, {"nodes": pump("Pressure")})) as src:
        await collect(src, lambda s: len(s) >= 1)
        await shared_server.arun(_status_change_all, shared_server)
        await collect(src, lambda s: False, limit=0.5)
        await shared_server.arun(shared_server.write, "Pressure", 77.0)
        after = await collect(src, lambda s: 77.0 in values(s, "sub.pressure"))
    # One line for one transition: what the server did and what we do about it.
    assert [r.getMessage() for r in caplog.records if r.name.startswith("edge_agent")] == [
        "sub: server ended the subscription (BadTimeout); rebuilding it"
    ]
    assert values(after, "sub.pressure") == [77.0]


async def _status_change_all(server: TestServer) -> None:
    assert server.server is not None
    for sub in server.server.iserver.subscription_service.subscriptions.values():
        await sub.monitored_item_srv.trigger_statuschange(ua.StatusCode(ua.StatusCodes.BadTimeout))
