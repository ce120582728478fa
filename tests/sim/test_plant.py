"""The simulated plant against raw clients: pymodbus, asyncua, a pty reader."""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
import serial
from asyncua.client.client import Client
from pymodbus.client import AsyncModbusTcpClient

from edge_agent.sim.physics import PROBE_LINE_REGEX
from edge_agent.sim.plant import Plant
from edge_agent.sim.scenario import Fault, Scenario
from edge_agent.sim.signal_map import OPCUA_NODES, REGISTER_COUNT, REGISTERS, encode_registers

pytestmark = pytest.mark.asyncio(loop_scope="session")
T = TypeVar("T")


@pytest_asyncio.fixture(loop_scope="session")
async def modbus(plant: Plant) -> AsyncIterator[AsyncModbusTcpClient]:
    client = AsyncModbusTcpClient(plant.host, port=plant.modbus_port, retries=0, timeout=2)
    assert await client.connect()
    yield client
    client.close()


async def _consistent(plant: Plant, read: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    """A read that no plant update interleaved with, and the update count it saw."""
    for _ in range(50):
        before = plant.updates
        result = await read()
        if plant.updates == before:
            return result, before
    raise AssertionError("the plant updated during every read")


def _floats(registers: list[int]) -> list[float]:
    return list(struct.unpack(">5f", struct.pack(">10H", *registers[:10])))


async def test_modbus_serves_the_documented_map(plant: Plant, modbus: Any) -> None:
    async def read() -> Any:
        return await modbus.read_holding_registers(0, count=REGISTER_COUNT, device_id=1)

    response, updates = await _consistent(plant, read)
    assert not response.isError()
    assert response.registers == encode_registers(plant.values, updates)
    by_name = dict(zip([r.name for r in REGISTERS[:5]], _floats(response.registers), strict=True))
    assert 15 < by_name["motor_current"] < 35 and 30 < by_name["bearing_temp"] < 60
    assert 40 < by_name["flow"] < 110 and 1 < by_name["discharge_pressure"] < 6
    # int16 in tenths of a degree: the same bearing temperature, rounded
    x10 = struct.unpack(">h", struct.pack(">H", response.registers[10]))[0]
    assert x10 * 0.1 == pytest.approx(by_name["bearing_temp"], abs=0.051)
    assert response.registers[11] == updates % 65536


async def test_modbus_heartbeat_advances(plant: Plant, modbus: Any) -> None:
    first = (await modbus.read_holding_registers(11, count=1, device_id=1)).registers[0]
    for _ in range(100):
        await asyncio.sleep(0.05)
        now = (await modbus.read_holding_registers(11, count=1, device_id=1)).registers[0]
        if now != first:
            return
    raise AssertionError("heartbeat register never changed")


async def test_modbus_input_registers_share_the_bank(plant: Plant, modbus: Any) -> None:
    async def both() -> tuple[Any, Any]:
        holding = await modbus.read_holding_registers(4, count=4, device_id=1)
        return holding, await modbus.read_input_registers(4, count=4, device_id=1)

    (holding, inputs), _ = await _consistent(plant, both)
    assert inputs.registers == holding.registers


async def test_modbus_refuses_unmapped_addresses_writes_and_other_units(modbus: Any) -> None:
    past_end = await modbus.read_holding_registers(REGISTER_COUNT, count=1, device_id=1)
    assert past_end.isError() and past_end.exception_code == 2
    straddling = await modbus.read_holding_registers(10, count=4, device_id=1)
    assert straddling.isError() and straddling.exception_code == 2
    write = await modbus.write_register(0, 1, device_id=1)
    assert write.isError() and write.exception_code == 2
    silent_unit = await modbus.read_holding_registers(0, count=2, device_id=7)
    assert silent_unit.isError() and silent_unit.exception_code == 0x0B


async def test_opcua_nodes_by_id_and_browse_path(plant: Plant) -> None:
    async with Client(plant.opcua_url, timeout=5) as client:
        by_id = [client.get_node(node.node_id) for node in OPCUA_NODES]
        paths = [node.browse_path.split("/") for node in OPCUA_NODES]
        by_path = [await client.nodes.root.get_child(path) for path in paths]
        assert [n.nodeid for n in by_path] == [n.nodeid for n in by_id]

        async def read() -> list[Any]:
            return list(await client.read_values(by_id))

        values, _ = await _consistent(plant, read)
        for node, value in zip(OPCUA_NODES, values, strict=True):
            assert value == plant.values[node.signal], node.signal
        data = await by_id[0].read_data_value()
        assert data.StatusCode is not None and data.StatusCode.is_good()
        assert data.SourceTimestamp is not None


def _read_lines(path: str, count: int) -> list[bytes]:
    with serial.Serial(path, timeout=5) as port:
        return [port.read_until(b"\r\n") for _ in range(count)]


async def test_probe_pty_emits_parseable_lines(plant: Plant) -> None:
    lines = await asyncio.to_thread(_read_lines, plant.serial_path, 3)
    for raw in lines:
        assert raw.endswith(b"\r\n"), raw
        match = re.match(PROBE_LINE_REGEX, raw.decode("ascii").strip())
        assert match is not None, raw
        assert 0.0 < float(match["rms"]) < float(match["peak"]) and 20 < float(match["temp"]) < 70


async def test_probe_carries_injected_garbage(plant: Plant) -> None:
    def read_one_garbled() -> bytes:
        with serial.Serial(plant.serial_path, timeout=5) as port:
            port.read_until(b"\r\n")  # sync on a line boundary
            assert plant.write_probe("VIB,rms=\x00garbage\r\n")
            for _ in range(5):
                line = port.read_until(b"\r\n")
                if b"garbage" in line:
                    return bytes(line)
        return b""

    assert await asyncio.to_thread(read_one_garbled) == b"VIB,rms=\x00garbage\r\n"


async def test_modbus_outage_drops_clients_and_comes_back(plant: Plant) -> None:
    async with plant.modbus_outage():
        down = AsyncModbusTcpClient(plant.host, port=plant.modbus_port, retries=0, timeout=1)
        assert not await down.connect()
        down.close()
    client = AsyncModbusTcpClient(plant.host, port=plant.modbus_port, retries=0, timeout=2)
    assert await client.connect()
    response = await client.read_holding_registers(0, count=2, device_id=1)
    client.close()
    assert not response.isError()


async def test_opcua_outage_drops_sessions_and_comes_back(plant: Plant) -> None:
    node = OPCUA_NODES[0]
    async with plant.opcua_outage():
        with pytest.raises((OSError, TimeoutError)):
            async with Client(plant.opcua_url, timeout=1):
                pass
    async with Client(plant.opcua_url, timeout=5) as client:
        value = await client.get_node(node.node_id).read_value()
    assert 40.0 < value < 80.0


async def test_scenario_faults_reach_the_wire() -> None:
    stuck = Fault("stuck", start=0.0, end=1e6, signal="flow", value=12.5)
    scenario = Scenario("stuck-flow", (stuck,), 10.0)
    async with Plant(scenario=scenario, opcua=False, serial=False) as quiet:
        client = AsyncModbusTcpClient(quiet.host, port=quiet.modbus_port, retries=0, timeout=2)
        assert await client.connect()
        for _ in range(200):  # the first update is at t=0, before the fault starts
            if quiet.updates >= 3:
                break
            await asyncio.sleep(0.05)
        response = await client.read_holding_registers(8, count=2, device_id=1)
        client.close()
    assert struct.unpack(">f", struct.pack(">2H", *response.registers))[0] == 12.5
    assert quiet.serial_path == "" and quiet.opcua_url == ""


async def test_busy_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with Plant(modbus_port=port, opcua=False, serial=False):
                pass


async def _until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def test_scheduled_modbus_outage_and_probe_garbage() -> None:
    faults = (Fault("modbus_offline", 0.5, 1.5), Fault("probe_garbage", -1.0, 1e6))
    async with Plant(Scenario("links", faults, 5.0), opcua=False, probe_interval=0.1) as links:
        lines = await asyncio.to_thread(_read_lines, links.serial_path, 4)
        assert lines and not any(re.match(PROBE_LINE_REGEX, x.decode("latin-1")) for x in lines)
        await _until(lambda: links.elapsed() > 0.7, "plant time 0.7 s")
        down = AsyncModbusTcpClient(links.host, port=links.modbus_port, retries=0, timeout=1)
        assert not await down.connect()
        down.close()
        await _until(lambda: links.elapsed() > 1.7, "plant time 1.7 s")
        up = AsyncModbusTcpClient(links.host, port=links.modbus_port, retries=0, timeout=2)
        assert await up.connect()
        up.close()


def _exists(path: Path) -> bool:
    return path.exists()


async def test_failed_start_leaves_no_socat_behind() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        plant = Plant(opcua_port=taken.getsockname()[1])
        with pytest.raises(OSError, match="address already in use"):
            async with plant:
                pass
    # the probe (started before OPC UA) was closed: socat gone, its folder removed
    assert plant.serial_path and not _exists(Path(plant.serial_path).parent)
