"""OpcuaSource polling against a real asyncua server."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from edge_agent.errors import SourceError
from edge_agent.sources.opcua.config import OpcuaSourceConfig
from edge_agent.sources.opcua.source import OpcuaSource
from edge_agent.types import Quality
from tests.sources.opcua.server import T0, TestServer, pki, shared_server

__all__ = ["pki", "shared_server"]  # fixtures


def config(url: str, nodes: list[dict[str, str]], **extra: object) -> OpcuaSourceConfig:
    return OpcuaSourceConfig.model_validate(
        {
            "type": "opcua",
            "name": "Line1",
            "url": url,
            "interval": "100ms",
            "groups": [{"nodes": nodes}],
            **extra,
        }
    )


def pump(name: str) -> dict[str, str]:
    return {"name": name.lower(), "node": f"ns=2;s=Pump1.{name}"}


async def test_poll_carries_source_timestamp_and_value(shared_server: TestServer) -> None:
    await shared_server.arun(shared_server.write, "Pressure", 2.5, 0, T0)
    async with OpcuaSource(
        config(shared_server.url, [pump("Pressure"), pump("Running"), pump("Count")])
    ) as src:
        samples = {s.signal: s for s in await src.read()}
    assert samples["line1.pressure"].value == 2.5
    assert samples["line1.pressure"].ts == T0.timestamp()
    assert samples["line1.pressure"].quality is Quality.GOOD
    assert samples["line1.running"].value == 1.0
    assert samples["line1.count"].value == 7.0


async def test_status_severity_becomes_quality(shared_server: TestServer) -> None:
    nodes = [pump("Broken"), pump("Shaky"), pump("Label")]
    async with OpcuaSource(config(shared_server.url, nodes)) as src:
        samples = {s.signal: s for s in await src.read()}
    assert samples["line1.broken"].quality is Quality.BAD
    assert samples["line1.broken"].value is None
    assert samples["line1.shaky"].quality is Quality.UNCERTAIN
    assert samples["line1.shaky"].value == 3.0
    # a string is garbage for a numeric signal: BAD, not a crash
    assert samples["line1.label"].quality is Quality.BAD


async def test_unchanged_value_is_not_repeated_and_a_new_one_is(shared_server: TestServer) -> None:
    stamp = T0 + dt.timedelta(seconds=5)
    await shared_server.arun(shared_server.write, "Level", 10.0, 0, stamp)
    async with OpcuaSource(config(shared_server.url, [pump("Level")])) as src:
        first = await src.read()
        again = await src.read()
        await shared_server.arun(
            shared_server.write, "Level", 11.0, 0, stamp + dt.timedelta(seconds=1)
        )
        changed = await src.read()
    assert [s.value for s in first] == [10.0]
    assert again == []
    assert [(s.value, s.ts) for s in changed] == [(11.0, stamp.timestamp() + 1)]


async def test_gateway_timestamps_give_a_sample_per_tick(shared_server: TestServer) -> None:
    cfg = config(shared_server.url, [pump("Count")], timestamps="gateway")
    async with OpcuaSource(cfg) as src:
        reads = [await src.read() for _ in range(3)]
    assert [len(r) for r in reads] == [1, 1, 1]


async def test_browse_path_and_numeric_node_id(shared_server: TestServer) -> None:
    nodes = [
        {"name": "temp", "path": "0:Objects/2:Plant/2:Pump1/2:Temperature"},
        {"name": "state", "node": "i=2259"},  # Server_ServerStatus_State
        {"name": "ghost", "path": "0:Objects/2:Plant/2:Nope"},
    ]
    async with OpcuaSource(config(shared_server.url, nodes)) as src:
        samples = {s.signal: s for s in await src.read()}
    assert samples["line1.temp"].quality is Quality.GOOD
    assert samples["line1.state"].value == 0.0  # Running
    assert samples["line1.ghost"].quality is Quality.BAD


async def test_unknown_node_id_reads_bad(shared_server: TestServer) -> None:
    async with OpcuaSource(
        config(shared_server.url, [{"name": "x", "node": "ns=2;s=Missing"}])
    ) as src:
        (sample,) = await src.read()
    assert sample.quality is Quality.BAD


async def test_unknown_node_is_named_once_and_read_once_fails(
    shared_server: TestServer, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_agent.cli.main import _read_all

    nodes = [{"name": "x", "node": "ns=2;s=Missing"}, pump("Temperature")]
    src = OpcuaSource(config(shared_server.url, nodes, timestamps="gateway"))
    async with src:
        for _ in range(3):
            await src.read()
    failed = await _read_all([src], 5.0)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == [
        "line1.x: node ns=2;s=Missing cannot be read: BadNodeIdUnknown (The node id refers to "
        "a node that does not exist in the server address space.); recorded as BAD"
    ]
    assert src.problems() == {"line1.x": "ns=2;s=Missing: BadNodeIdUnknown"}
    assert failed == 1
    assert "line1.x: cannot be read: ns=2;s=Missing: BadNodeIdUnknown" in capsys.readouterr().err


async def test_unreachable_server_is_a_source_error(port: int) -> None:
    with pytest.raises(SourceError, match="cannot talk to"):
        async with OpcuaSource(
            config(f"opc.tcp://127.0.0.1:{port}", [pump("Count")], timeout="1s")
        ):
            pass


def test_signals_come_from_config_without_io() -> None:
    cfg = config("opc.tcp://nowhere:4840", [pump("Count")], asset="press")
    (info,) = OpcuaSource(cfg).signals()
    assert (info.signal, info.asset, info.interval) == ("line1.count", "press", 0.1)


async def test_reads_refused_as_too_big_are_halved_and_the_size_is_kept(
    shared_server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    names = ["Temperature", "Pressure", "Running", "Count", "Broken", "Shaky", "Level", "Serial"]
    cfg = config(shared_server.url, [pump(n) for n in names], timestamps="gateway")
    shared_server.read_limit, refused = 3, shared_server.refused_reads
    src = OpcuaSource(cfg)
    try:
        async with src:
            first = await src.read()  # 8 refused, 4 refused, then 2 at a time
            second = await src.read()
        after_one_session = shared_server.refused_reads
        async with src:  # re-entered as after an outage: what was learned is kept
            await src.read()
    finally:
        shared_server.read_limit = 0
    assert len(first) == len(second) == 8
    assert {s.signal: s.quality for s in first}["line1.serial"] is Quality.GOOD
    assert after_one_session - refused == 2
    assert shared_server.refused_reads == after_one_session
    assert caplog.text.count("reading at most 2 per request") == 1


async def test_a_group_with_a_longer_interval_is_read_only_when_due(
    shared_server: TestServer,
) -> None:
    groups = [
        {"nodes": [pump("Count")]},  # every tick
        {"interval": "1h", "nodes": [pump("Serial")]},
    ]
    cfg = config(shared_server.url, [], timestamps="gateway", groups=groups)
    async with OpcuaSource(cfg) as src:
        first = sorted(s.signal for s in await src.read())
        second = sorted(s.signal for s in await src.read())
    assert first == ["line1.count", "line1.serial"]
    assert second == ["line1.count"]
    intervals = {i.signal: i.interval for i in OpcuaSource(cfg).signals()}
    assert intervals == {"line1.count": 0.1, "line1.serial": 3600.0}
