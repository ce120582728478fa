"""NodeTable: an OPC UA group's nodes as columns, equal to the list they stand for."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config_fork import for_running
from edge_agent.schema import plain
from edge_agent.sources.opcua.config import OpcuaSourceConfig
from edge_agent.sources.opcua.node_list import NodeRow, NodeTable, OpcuaNodeConfig
from edge_agent.sources.opcua.source import OpcuaSource
from edge_agent.sources.opcua.write import writable_nodes
from tests.sources.opcua.server import TestServer, pki, shared_server

__all__ = ["pki", "shared_server"]  # fixtures

NODES: list[dict[str, Any]] = [
    {"name": "Pressure", "node": "ns=2;s=Pump1.Pressure"},
    {"name": "count", "node": "ns=2;s=Pump1.Count"},
    {"name": "running", "node": "ns=2;s=Pump1.Running", "unit": ""},  # set, not default
    {"name": "temp", "path": "0:Objects/2:Plant/2:Pump1/2:Temperature", "unit": "degC"},
    {"name": "level", "node": "ns=2;s=Pump1.Level", "asset": "tank",
     "write": {"type": "Double", "min": 0, "max": 100}},
    {"name": "shaky", "node": "ns=2;s=Pump1.Shaky", "description": "flickers"},
]  # fmt: skip
SUBSCRIBED: list[dict[str, Any]] = [{"name": "serial", "node": "ns=2;s=Pump1.Serial"}]


def source_config(url: str = "opc.tcp://127.0.0.1:4840") -> OpcuaSourceConfig:
    return OpcuaSourceConfig.model_validate(
        {"type": "opcua", "name": "Line1", "url": url, "interval": "100ms", "asset": "pump",
         "groups": [{"nodes": NODES}, {"mode": "subscribe", "nodes": SUBSCRIBED}]}
    )  # fmt: skip


def compacted(config: OpcuaSourceConfig) -> OpcuaSourceConfig:
    copy = config.model_copy(deep=True)
    copy.compact()
    return copy


def nodes() -> list[OpcuaNodeConfig]:
    return list(source_config().groups[0].nodes)


def test_rows_hold_what_the_models_hold_and_share_shapes() -> None:
    models = nodes()
    table = NodeTable.of(models)
    assert len(table) == len(models)
    fields = ("name", "node", "path", "unit", "asset", "description", "write")
    for row, model in zip(table.rows(), models, strict=True):
        assert isinstance(row, NodeRow)
        assert row == tuple(getattr(model, field) for field in fields)
    assert table.row(0) == next(table.rows())
    assert len(table.shapes) == len(models) - 1  # Pressure and count: one shape
    assert NodeTable.of(table) is table


def test_indexing_builds_the_models_it_was_made_of() -> None:
    models = nodes()
    table = NodeTable.of(models)
    for i, model in enumerate(models):
        built = table[i]
        assert isinstance(built, OpcuaNodeConfig)
        assert built == model and repr(built) == repr(model)
        assert built.model_fields_set == model.model_fields_set
    assert table[-1] == models[-1]
    assert table[1:3] == models[1:3] and table[::-2] == models[::-2]
    with pytest.raises(IndexError):
        table[len(models)]
    assert list(table) == models
    assert plain(table) == plain(models)


def test_equal_to_the_list_and_to_an_equal_table() -> None:
    models = nodes()
    table = NodeTable.of(models)
    assert table == models and models == table
    assert table == NodeTable.of(list(models))
    renamed = [*models[:-1], models[-1].model_copy(update={"name": "other"})]
    moved = [models[0].model_copy(update={"node": "ns=2;s=X"}), *models[1:]]
    unit = [*models[:2], models[2].model_copy(update={"unit": "V"}), *models[3:]]
    for other in (renamed, moved, unit, models[:-1], list(reversed(models))):
        assert table != other and other != table
        assert table != NodeTable.of(other)
    assert table != "Pressure" and table != 5
    with pytest.raises(TypeError):
        hash(table)


def test_pickles_as_columns_smaller_than_the_models() -> None:
    first = nodes()[0]
    many = [first.model_copy(update={"name": f"t{i}", "node": f"ns=2;s=T{i}"}) for i in range(200)]
    table = NodeTable.of(many)
    again = pickle.loads(pickle.dumps(table))
    assert isinstance(again, NodeTable) and again == table and again == many
    assert len(pickle.dumps(table)) < len(pickle.dumps(many)) / 3


def test_compact_source_config_dumps_and_compares_as_before() -> None:
    config = source_config()
    small = compacted(config)
    assert all(isinstance(group.nodes, NodeTable) for group in small.groups)
    assert small == config and config == small
    assert small.model_dump() == config.model_dump()
    assert small.model_dump(mode="json", by_alias=True) == plain(small) == plain(config)
    assert small.signal_names() == config.signal_names()
    assert writable_nodes(small) == writable_nodes(config)
    assert list(writable_nodes(config)) == ["line1.level"]


def test_for_running_keeps_opcua_nodes_as_tables(tmp_path: Path) -> None:
    from edge_agent.config import load_config

    path = tmp_path / "agent.yaml"
    lines = [f"      - {{name: t{i}, node: 'ns=2;s=T{i}'}}" for i in range(50)]
    path.write_text(
        "sources:\n  - type: opcua\n    name: plc\n    url: opc.tcp://127.0.0.1:4840\n"
        "    groups:\n    - nodes:\n" + "\n".join(lines) + "\n"
    )
    loaded = load_config(path)
    trimmed = pickle.loads(pickle.dumps(for_running(load_config(path))))
    (before,), (after,) = loaded.sources, trimmed.sources
    assert isinstance(after, OpcuaSourceConfig) and isinstance(before, OpcuaSourceConfig)
    assert isinstance(after.groups[0].nodes, NodeTable)
    assert after == before and after.signal_names()[-1] == "plc.t49"


async def test_a_source_reads_writes_and_lists_the_same_from_a_table(
    shared_server: TestServer,
) -> None:
    config = source_config(shared_server.url)
    seen: list[tuple[Any, ...]] = []
    for made in (config, compacted(config)):
        async with OpcuaSource(made) as source:
            samples = await source.read()
            readback = await source.write("line1.level", 50.0)  # its value: nothing changes
            problems = source.problems()
        # The subscribed node's first value may come after the first read: polled ones only.
        values = sorted((s.signal, s.value) for s in samples if s.signal != "line1.serial")
        seen.append((source.signals(), source.writable(), values, readback.actual, problems))
    assert seen[1] == seen[0]
    signals, _, values, actual, _ = seen[0]
    assert actual == pytest.approx(50.0)
    assert [(i.signal, i.asset, i.unit) for i in signals][3:5] == [
        ("line1.temp", "pump", "degC"),
        ("line1.level", "tank", ""),
    ]
    assert dict(values)["line1.temp"] == 21.5 and dict(values)["line1.count"] == 7.0
