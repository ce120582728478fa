"""OPC UA source counters, scraped over HTTP from the site view: faults made for real.

A server restart (a server process killed and started again, as in
``test_faults.py``) must count one reconnect; a subscription the server forgets
without a word counts as silent, one it ends as ended, each rebuilt once; Reads
the server refuses as too big count each split; data changes count what the
subscriptions delivered.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from edge_agent.sources.opcua.config import OpcuaSourceConfig
from edge_agent.sources.opcua.source import OpcuaSource
from tests.conftest import free_port
from tests.sources.opcua.server import TestServer, pki, shared_server
from tests.sources.opcua.test_faults import BACKOFF_MAX, Plant, running, serving
from tests.sources.opcua.test_subscribe import (
    _drop_all_subscriptions,
    _status_change_all,
    collect,
    pump,
)
from tests.test_metrics import Series, scrape, serving_sources, status, value

__all__ = ["pki", "shared_server"]  # fixtures
pytestmark = pytest.mark.timeout(90)


def counters(series: Series, source: str) -> dict[str, float]:
    """The OPC UA families of ``source`` in one scrape."""
    names = ("data_changes", "sessions", "session_reconnects", "keepalive_misses", "read_splits")
    found = {n: value(series, f"edge_agent_opcua_{n}_total", source=source) for n in names}
    for reason in ("silent", "ended"):
        found[reason] = value(
            series, "edge_agent_opcua_subscriptions_recreated_total", source=source, reason=reason
        )
    return found


async def scraped(port: int, source: str) -> dict[str, float]:
    return counters(await asyncio.to_thread(scrape, port), source)


@pytest.fixture
def plant(tmp_path: Path) -> Plant:
    return Plant(free_port(), tmp_path / "written.txt")


async def test_a_server_restart_counts_one_reconnect(plant: Plant, tmp_path: Path) -> None:
    web = free_port()
    async with (
        serving(plant),
        running(plant.url) as agent,
        serving_sources([agent.source], tmp_path, web),
    ):
        before = await scraped(web, "f")
        await plant.kill()
        await asyncio.sleep(BACKOFF_MAX)
        await plant.start()
        back = plant.written()[-1] + 1
        await agent.wait(lambda: agent.counter()[-1] >= back)
        after = await scraped(web, "f")
        received = agent.source.books()["received"]
    assert (before["sessions"], before["session_reconnects"]) == (1, 0)
    assert (after["sessions"], after["session_reconnects"]) == (2, 1)
    assert after["data_changes"] >= len(agent.counter()) > 0
    assert after["data_changes"] <= received
    assert after["silent"] == after["ended"] == after["read_splits"] == 0


def sub_config(url: str, **extra: Any) -> OpcuaSourceConfig:
    group = {"mode": "subscribe", "publishing_interval": "50ms", "nodes": pump("Level")}
    raw = {"type": "opcua", "name": "sub", "url": url, "interval": "50ms", "groups": [group]}
    return OpcuaSourceConfig.model_validate({**raw, **extra})


async def test_silent_and_ended_subscriptions_are_counted_apart(
    shared_server: TestServer, tmp_path: Path
) -> None:
    src = OpcuaSource(sub_config(shared_server.url, silence_timeout="500ms"))
    async with serving_sources([src], tmp_path, web := free_port()), src:
        await collect(src, lambda s: len(s) >= 1)
        first = await scraped(web, "sub")
        await shared_server.arun(_drop_all_subscriptions, shared_server)  # silent, no word
        await collect(src, lambda s: False, limit=1.5)
        silent = await scraped(web, "sub")
        await shared_server.arun(_status_change_all, shared_server)  # the server ends it
        await collect(src, lambda s: False, limit=0.5)
        ended = await scraped(web, "sub")
        changes = ended["data_changes"]
        await shared_server.arun(shared_server.write, "Level", 7000.0 + changes)
        await collect(src, lambda s: len(s) >= 1)
        changed = await scraped(web, "sub")
        api = await asyncio.to_thread(status, web)
    assert (first["silent"], first["ended"], first["sessions"]) == (0, 0, 1)
    assert first["data_changes"] >= 1
    assert (silent["silent"], silent["ended"]) == (1, 0)
    assert silent["keepalive_misses"] == first["keepalive_misses"] + 1  # found by the silence
    assert (ended["silent"], ended["ended"]) == (1, 1)
    assert changed["data_changes"] == changes + 1
    assert changed["session_reconnects"] == 0
    (record,) = api["sources"]
    assert record["units"] == []
    assert record["opcua"]["subscriptions_silent"] == record["opcua"]["subscriptions_ended"] == 1
    assert record["opcua"]["data_changes"] >= changed["data_changes"]


async def test_a_missed_keepalive_is_counted_once_per_gap(
    shared_server: TestServer, tmp_path: Path
) -> None:
    # keep-alive period 2 x 50 ms: late after 150 ms without a publish response, silent
    # (rebuilt) only after 30 s: the gap is seen as a miss long before it is a silence
    src = OpcuaSource(sub_config(shared_server.url, keepalive_count=2, silence_timeout="30s"))
    async with serving_sources([src], tmp_path, web := free_port()), src:
        await collect(src, lambda s: len(s) >= 1)
        before = await scraped(web, "sub")
        await shared_server.arun(_drop_all_subscriptions, shared_server)  # silent, no word
        await collect(src, lambda s: False, limit=1.5)  # ten periods of the same gap
        after = await scraped(web, "sub")
    assert after["keepalive_misses"] == before["keepalive_misses"] + 1
    assert after["silent"] == after["ended"] == 0


async def test_reads_split_for_size_are_counted(shared_server: TestServer, tmp_path: Path) -> None:
    names = ["Temperature", "Pressure", "Running", "Count", "Broken", "Shaky", "Level", "Serial"]
    group = {"mode": "poll", "nodes": pump(*names)}
    raw = {"type": "opcua", "name": "big", "url": shared_server.url, "interval": "100ms"}
    src = OpcuaSource(OpcuaSourceConfig.model_validate({**raw, "groups": [group]}))
    shared_server.read_limit = 3
    try:
        async with serving_sources([src], tmp_path, web := free_port()), src:
            await src.read()  # 8 refused, 4 refused, then 2 at a time
            await src.read()
            split = await scraped(web, "big")
    finally:
        shared_server.read_limit = 0
    assert split["read_splits"] == 2
    assert split["data_changes"] == 0  # polled, not subscribed
