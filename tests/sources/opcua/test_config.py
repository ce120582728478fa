"""OPC UA config validation and DataValue conversion, without a server."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
from typing import Any

import pytest
from asyncua import ua as _ua
from pydantic import ValidationError

from edge_agent.sources.opcua.config import OpcuaSourceConfig
from edge_agent.sources.opcua.nodes import Resolved
from edge_agent.sources.opcua.session import Poller
from edge_agent.sources.opcua.values import SampleMaker, quality_of, timestamp_of
from edge_agent.types import Quality

ua: Any = _ua
T0 = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)


def source(**group: Any) -> dict[str, Any]:
    group.setdefault("nodes", [{"name": "a", "node": "ns=2;s=A"}])
    return {"type": "opcua", "name": "s", "url": "opc.tcp://plc:4840", "groups": [group]}


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ({"nodes": [{"name": "a"}]}, "exactly one of node"),
        (
            {"nodes": [{"name": "a", "node": "ns=2;s=A", "path": "0:Objects"}]},
            "exactly one of node",
        ),
        ({"nodes": [{"name": "a", "node": "Pump1.Temp"}]}, "is not a NodeId"),
        (
            {"nodes": [{"name": "a", "path": "Objects/2:Plant"}]},
            "must be <namespace index>:<BrowseName>",
        ),
        ({"deadband": {"type": "absolute", "value": 1}}, "only for mode: subscribe"),
        ({"mode": "subscribe", "deadband": {"type": "percent", "value": 150}}, "between 0 and 100"),
        (
            {"nodes": [{"name": "a", "node": "i=1"}, {"name": "A", "node": "i=2"}]},
            "node names repeat: a",
        ),
        ({"mode": "subscribe", "queue_sise": 3}, "Extra inputs are not permitted"),
        ({"interval": "250ms"}, r"must be a multiple of the source's interval \(1.0 s\)"),
        ({"interval": "500ms"}, "must be a multiple"),
        ({"mode": "subscribe", "interval": "2s"}, "interval: only for mode: poll"),
    ],
)
def test_config_errors_say_what_is_wrong(group: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OpcuaSourceConfig.model_validate(source(**group))


def test_repeated_names_among_10000_nodes_are_each_named_once_sorted() -> None:
    nodes = [{"name": f"t{i}", "node": f"ns=2;s=T{i}"} for i in range(10_000)]
    nodes += [{"name": "T9999", "node": "i=1"}, {"name": "t17", "node": "i=2"}]
    nodes += [{"name": "t17", "node": "i=3"}]
    config = source(nodes=nodes[:5_000])
    config["groups"].append({"nodes": nodes[5_000:]})  # a repeat across groups counts too
    with pytest.raises(ValidationError, match=r"node names repeat: t17, t9999 \[") as caught:
        OpcuaSourceConfig.model_validate(config)
    assert caught.value.error_count() == 1


def test_auth_and_security_need_their_files() -> None:
    raw = source()
    with pytest.raises(ValidationError, match="type username needs username"):
        OpcuaSourceConfig.model_validate({**raw, "auth": {"type": "username"}})
    with pytest.raises(ValidationError, match="policy None goes with mode None"):
        OpcuaSourceConfig.model_validate({**raw, "security": {"policy": "None", "mode": "Sign"}})


@pytest.mark.parametrize(
    ("status", "quality"),
    [
        (0x0000_0000, Quality.GOOD),
        (0x0040_0000, Quality.GOOD),  # Good with info bits
        (0x4092_0000, Quality.UNCERTAIN),
        (0x8000_0000, Quality.BAD),
        (0xC000_0000, Quality.BAD),  # reserved severity 11 counts as Bad
    ],
)
def test_quality_follows_status_severity(status: int, quality: Quality) -> None:
    assert quality_of(status) is quality


def test_timestamp_falls_back_from_source_to_server_to_gateway() -> None:
    both = ua.DataValue(SourceTimestamp=T0, ServerTimestamp=T0 + dt.timedelta(seconds=1))
    server_only = ua.DataValue(ServerTimestamp=T0 + dt.timedelta(seconds=1))
    assert timestamp_of(both, "source", 5.0) == T0.timestamp()
    assert timestamp_of(both, "server", 5.0) == T0.timestamp() + 1
    assert timestamp_of(both, "gateway", 5.0) == 5.0
    assert timestamp_of(server_only, "source", 5.0) == T0.timestamp() + 1
    assert timestamp_of(ua.DataValue(), "source", 5.0) == 5.0


def test_non_numbers_are_bad_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    maker = SampleMaker("gateway")
    with caplog.at_level(logging.WARNING):
        samples = [
            maker.make("s.x", ua.DataValue(ua.Variant(v)), float(i))
            for i, v in enumerate(["a", [1, 2], float("nan")])
        ]
    assert [s.quality for s in samples if s] == [Quality.BAD] * 3
    assert caplog.text.count("s.x: value is not a number") == 1


def test_poller_splits_reads_at_the_server_limit() -> None:
    nodes = [Resolved(f"s.n{i}", ua.NodeId(i, 2)) for i in range(5)] + [Resolved("s.gone", None)]
    batch = Poller([(1.0, nodes)], 1.0, max_per_read=2).batch((1.0,))
    assert [len(r.NodesToRead) for r in batch.requests] == [2, 2, 1]
    assert [r.signal for r in batch.missing] == ["s.gone"]
    unlimited = Poller([(1.0, nodes)], 1.0, 0).batch((1.0,))
    assert [len(r.NodesToRead) for r in unlimited.requests] == [5]


def test_poller_batches_only_the_groups_due() -> None:
    fast = [Resolved(f"s.f{i}", ua.NodeId(i, 2)) for i in range(3)]
    slow = [Resolved("s.slow", ua.NodeId(9, 2))]
    poller = Poller([(1.0, fast), (5.0, slow)], 1.0, max_per_read=0)
    assert poller.due(100.0) == (1.0, 5.0)  # everything at the first tick
    assert poller.due(101.0) == (1.0,)
    assert [r.signal for r in poller.batch((1.0,)).found] == ["s.f0", "s.f1", "s.f2"]
    assert [poller.due(100.0 + t) for t in (2, 3, 4, 5)][-1] == (1.0, 5.0)


def test_loading_the_config_and_cli_does_not_import_asyncua() -> None:
    code = (
        "import sys, argparse\n"
        "import edge_agent.registry\n"
        "import edge_agent.sources.opcua.source as o, edge_agent.cli.opcua as c\n"
        "from edge_agent.sources.opcua.config import OpcuaSourceConfig\n"
        "c.register(argparse.ArgumentParser().add_subparsers())\n"
        "o.OpcuaSource(OpcuaSourceConfig.model_validate({'type': 'opcua', 'name': 's', "
        "'url': 'opc.tcp://h:1', 'groups': [{'nodes': [{'name': 'a', 'node': 'i=1'}]}]}))"
        ".signals()\n"
        "print('asyncua' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
