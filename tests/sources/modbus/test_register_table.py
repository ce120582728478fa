"""RegisterTable: a Modbus source's registers as columns, equal to the list they stand for."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from edge_agent.schema import plain
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.registers import ModbusRegisterConfig, RegisterRow, RegisterTable
from edge_agent.sources.modbus.source import ModbusSource
from edge_agent.types import SignalInfo
from tests.sources.modbus.server import device, tcp_peer

REGISTERS: list[dict[str, Any]] = [
    {"name": "T1", "address": 0, "data_type": "float32"},
    {"name": "t2", "address": 2, "data_type": "float32"},
    {"name": "t3", "address": 4, "data_type": "float32", "byte_order": "ABCD"},  # set, not default
    {"name": "sp", "address": 10, "scale": 0.1, "write": {"min": 0, "max": 100}},
    {"name": "run", "table": "coil", "address": 5, "data_type": "bool", "write": {}},
    {"name": "fault", "address": 11, "data_type": "bool", "bit": 3, "unit": "", "asset": "p"},
    {"name": "e", "address": 20, "data_type": "uint64", "device_id": 1, "interval": "2s"},
]


def source_config(registers: list[dict[str, Any]], port: int = 502) -> ModbusSourceConfig:
    return ModbusSourceConfig.model_validate(
        {"type": "modbus", "name": "Plc", "url": f"tcp://127.0.0.1:{port}", "timeout": "200ms",
         "retries": 0, "registers": registers}
    )  # fmt: skip


def compacted(config: ModbusSourceConfig) -> ModbusSourceConfig:
    copy = config.model_copy()
    copy.compact()
    return copy


def test_rows_hold_names_addresses_and_shared_shapes() -> None:
    registers = list(source_config(REGISTERS).registers)
    table = RegisterTable.of(registers)
    assert len(table) == len(registers)
    rows = list(table.rows())
    assert [(r.name, r.address) for r in rows] == [(r.name, r.address) for r in registers]
    assert rows[0].shape is rows[1].shape  # same keys, same values: one shape
    assert rows[2].shape == rows[1].shape and rows[2].shape is not rows[1].shape  # byte_order set
    assert len(table.shapes) == len(registers) - 1
    for row, register in zip(rows, registers, strict=True):
        assert row == table.row(registers.index(register))
        assert row.shape.width == register.width
        assert row.shape.write == register.write
    assert RegisterTable.of(table) is table


def test_indexing_builds_the_models_it_was_made_of() -> None:
    registers = list(source_config(REGISTERS).registers)
    table = RegisterTable.of(registers)
    for i, register in enumerate(registers):
        built = table[i]
        assert isinstance(built, ModbusRegisterConfig)
        assert built == register and repr(built) == repr(register)
        assert built.model_fields_set == register.model_fields_set
    assert table[-1] == registers[-1]
    assert table[1:3] == registers[1:3]
    assert table[::-2] == registers[::-2]
    with pytest.raises(IndexError):
        table[len(registers)]
    assert list(table) == registers
    assert plain(table) == plain(registers)


def test_equal_to_the_list_and_to_an_equal_table() -> None:
    registers = list(source_config(REGISTERS).registers)
    table = RegisterTable.of(registers)
    assert table == registers and registers == table
    assert table == RegisterTable.of(list(registers))
    moved = [*registers[:-1], registers[-1].model_copy(update={"address": 21})]
    scaled = [registers[0].model_copy(update={"scale": 2.0}), *registers[1:]]
    for other in (moved, scaled, registers[:-1], list(reversed(registers))):
        assert table != other and other != table
        assert table != RegisterTable.of(other)
    assert table != "T1" and table != 5
    with pytest.raises(TypeError):
        hash(table)


def test_pickles_as_columns_smaller_than_the_models() -> None:
    registers = list(source_config(REGISTERS).registers)
    many = [r.model_copy(update={"name": f"x{i}", "address": i}) for i, r in enumerate(registers)]
    many = [*many, *(many[0].model_copy(update={"name": f"y{i}", "address": 100 + i})
                     for i in range(200))]  # fmt: skip
    table = RegisterTable.of(many)
    again = pickle.loads(pickle.dumps(table))
    assert isinstance(again, RegisterTable) and again == table and again == many
    assert len(pickle.dumps(table)) < len(pickle.dumps(many)) / 3


def test_compact_source_config_dumps_hashes_and_compares_as_before() -> None:
    config = source_config(REGISTERS)
    small = compacted(config)
    assert isinstance(small.registers, RegisterTable)
    assert small == config and config == small
    assert small.model_dump() == config.model_dump()
    assert small.model_dump(mode="json", by_alias=True) == plain(small) == plain(config)
    assert small.units() == config.units() and small.request_timeout == config.request_timeout
    assert [r for r in small.registers if r.write] == [r for r in config.registers if r.write]


async def test_a_source_reads_writes_and_shows_words_the_same_from_a_table(port: int) -> None:
    config = source_config(REGISTERS, port)
    async with tcp_peer([device(1)], port) as peer:
        await peer.set(1, "holding", 0, [0x4049, 0x0FDB, 0x4000, 0, 0x3F80, 0])
        await peer.set(1, "holding", 10, [250, 0b1000])
        seen: list[tuple[Any, ...]] = []
        for made in (config, compacted(config)):
            source = ModbusSource(made)
            async with source:
                samples = await source.read()
                readback = await source.write("plc.sp", 42.0)
                words = source.raw_words()
            seen.append((source.signals(), source.writable(), samples, readback, words))
            await peer.set(1, "holding", 10, [250])
    (signals, writable, samples, readback, words), table_side = seen
    assert table_side[0] == signals and table_side[1] == writable
    assert [(s.signal, s.value) for s in table_side[2]] == [(s.signal, s.value) for s in samples]
    assert table_side[3] == readback and readback.actual == pytest.approx(42.0)
    assert table_side[4] == words and words["plc.t1"] == [0x4049, 0x0FDB]
    assert {s.signal for s in samples} >= {"plc.t1", "plc.sp", "plc.fault", "plc.run"}


def test_row_is_a_named_tuple() -> None:
    row = RegisterTable.of(source_config(REGISTERS).registers).row(3)
    assert isinstance(row, RegisterRow) and row.name == "sp" and row.address == 10
    assert row.shape.scale == 0.1 and row.shape.fields_set >= {"scale", "write"}


def test_signal_names_from_a_table_without_building_models() -> None:
    config = source_config(REGISTERS)
    assert compacted(config).signal_names() == config.signal_names()
    assert config.signal_names()[0] == "plc.t1"


def test_catalogue_equals_signal_infos_built_one_by_one() -> None:
    config = source_config(REGISTERS).model_copy(update={"asset": "pump", "interval": 0.5})
    expected = [
        SignalInfo(signal=f"plc.{r.name}".lower(), source="Plc", interval=r.interval or 0.5,
                   asset=r.asset or "pump", unit=r.unit, description=r.description)
        for r in config.registers
    ]  # fmt: skip
    for side in (config, compacted(config)):
        infos = ModbusSource(side).signals()
        assert infos == expected and [hash(i) for i in infos] == [hash(i) for i in expected]
        assert [(i.interval, i.asset) for i in infos][-2:] == [(0.5, "p"), (2.0, "pump")]
        with pytest.raises(AttributeError):
            infos[0].unit = "V"  # type: ignore[misc]  # still frozen
