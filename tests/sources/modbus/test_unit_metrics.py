"""Per-unit Modbus counters, scraped over HTTP from the site view while the real poll loop runs.

A pymodbus server holds three units: unit 1 answers (and refuses one address with
"illegal data address"), unit 2 never answers (a dead unit, as in
``test_isolation.py``), unit 3 answers every request with "server device busy".
The counters are compared with what the server's wire trace saw: each request
counted once, each kind of failure on its own unit. A lost connection is made by
stopping the server while a request waits for a silent unit, a malformed reply by a
small peer that answers one register short. A live and a dead unit on an RTU line
(a socat pty pair) are counted as over TCP. The whole agent (``run_agent``) serves
the same series from its own site view.
"""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymodbus.constants import ExcCodes

from edge_agent.agent import run_agent
from edge_agent.config import load_config
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.source import ModbusSource
from edge_agent.sources.poll import PollStats, poll_forever
from tests.conftest import free_port
from tests.sources.modbus.server import Peer, Silence, device, pty_pair, start_rtu, start_tcp
from tests.test_metrics import Series, listening, scrape, serving_sources, status, until, value

pytestmark = pytest.mark.timeout(60)

ALIVE, DEAD, BUSY = 1, 2, 3


async def busy(*_args: object) -> ExcCodes:
    """The simulator's device action: refuse every request as busy (exception 6)."""
    return ExcCodes.DEVICE_BUSY


def source(url: str, **extra: Any) -> ModbusSource:
    registers = [
        {"name": "ok", "address": 0, "device_id": ALIVE},
        {"name": "nowhere", "address": 400, "device_id": ALIVE},  # outside its valid range
        {"name": "dead", "address": 0, "device_id": DEAD},
        {"name": "busy", "address": 0, "device_id": BUSY},
    ]
    raw = {"type": "modbus", "name": "line", "url": url, "interval": "500ms", "timeout": "200ms"}
    return ModbusSource(ModbusSourceConfig.model_validate({**raw, **extra, "registers": registers}))


async def poll_for(src: ModbusSource, stats: PollStats, seconds: float) -> None:
    """Run the agent's poll loop on ``src`` for ``seconds``, then stop it between two ticks.

    Ticks fall on the wall clock's grid of the interval: stopping at 80 % of a tick
    leaves no request in flight (a silent unit's try ends its timeout after the
    tick), so what the wire saw and what the counters say can be compared exactly.
    """
    task = asyncio.create_task(poll_forever(src, lambda _batch: None, stats))
    await asyncio.sleep(seconds)
    interval = float(src.config.interval)
    await asyncio.sleep((0.8 * interval - time.time() % interval) % interval)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0.3)  # the last request sent reaches the server's trace


def on_wire(peer: Peer, unit: int) -> int:
    return sum(1 for u, *_ in peer.wire.requests if u == unit)


def unit_series(series: Series, metric: str, unit: int, /, **labels: str) -> float:
    found = {"source": "line", "unit": str(unit), **labels}
    return series[(metric, tuple(sorted(found.items())))]


async def test_each_unit_counts_its_requests_and_failures(tmp_path: Path, port: int) -> None:
    silence = Silence()
    devices = [device(ALIVE), device(DEAD, silence=silence), device(BUSY)]
    devices[2].action = busy
    peer = await start_tcp(devices, port)
    started = time.time()
    src = source(f"tcp://127.0.0.1:{port}")
    try:
        async with serving_sources([src], tmp_path, web := free_port()) as (stats,):
            await poll_for(src, stats, 3.0)
            series = await asyncio.to_thread(scrape, web)
            api = await asyncio.to_thread(status, web)
    finally:
        await peer.stop()
    _check_alive(series, peer)
    _check_dead(series, peer, started)
    _check_busy(series, peer)
    _check_api(api, series)


def _check_alive(series: Series, peer: Peer) -> None:
    sent = on_wire(peer, ALIVE)
    assert sent >= 6  # two blocks per tick, six ticks
    assert unit_series(series, "edge_agent_modbus_requests_total", ALIVE) == sent
    refused = unit_series(
        series, "edge_agent_modbus_exceptions_total", ALIVE, code="2", name="illegal_data_address"
    )
    assert refused >= 1
    failed = "edge_agent_modbus_failed_requests_total"
    assert unit_series(series, failed, ALIVE, kind="exception") == refused
    assert unit_series(series, failed, ALIVE, kind="timeout") == 0
    # every request was answered (with data or the refusal), and timed
    assert unit_series(series, "edge_agent_modbus_response_seconds_count", ALIVE) == sent
    assert unit_series(series, "edge_agent_modbus_response_seconds_sum", ALIVE) > 0
    assert unit_series(series, "edge_agent_modbus_last_response_seconds", ALIVE) > 0
    assert unit_series(series, "edge_agent_modbus_unit_backoff", ALIVE) == 0
    assert unit_series(series, "edge_agent_modbus_unit_backoff_since_timestamp_seconds", ALIVE) == 0


def _check_dead(series: Series, peer: Peer, started: float) -> None:
    sent = on_wire(peer, DEAD)
    assert sent >= 2  # the first try, and one after the first backoff (0.5-1 s)
    assert unit_series(series, "edge_agent_modbus_requests_total", DEAD) == sent
    failed = "edge_agent_modbus_failed_requests_total"
    assert unit_series(series, failed, DEAD, kind="timeout") == sent
    assert unit_series(series, failed, DEAD, kind="exception") == 0
    assert unit_series(series, "edge_agent_modbus_response_seconds_count", DEAD) == 0
    assert unit_series(series, "edge_agent_modbus_unit_backoff", DEAD) == 1
    since = unit_series(series, "edge_agent_modbus_unit_backoff_since_timestamp_seconds", DEAD)
    assert started < since < time.time()
    assert unit_series(series, "edge_agent_modbus_unit_outages_total", DEAD) == 1


def _check_busy(series: Series, peer: Peer) -> None:
    sent = on_wire(peer, BUSY)
    assert sent >= 5  # a busy unit is alive: asked at every tick, never backed off
    assert unit_series(series, "edge_agent_modbus_requests_total", BUSY) == sent
    busy_name = {"code": "6", "name": "server_device_busy"}
    assert unit_series(series, "edge_agent_modbus_exceptions_total", BUSY, **busy_name) == sent
    failed = "edge_agent_modbus_failed_requests_total"
    assert unit_series(series, failed, BUSY, kind="exception") == sent
    assert unit_series(series, failed, BUSY, kind="timeout") == 0
    assert unit_series(series, "edge_agent_modbus_unit_backoff", BUSY) == 0
    assert unit_series(series, "edge_agent_modbus_unit_outages_total", BUSY) == 0


async def test_units_on_an_rtu_line_count_their_requests_and_failures(
    tmp_path: Path,
) -> None:
    """The same counters on a shared serial line (RTU over a socat pty pair).

    On a line, a silent unit is only a timeout: nothing closes, so nothing may be
    counted as a lost connection, and the unit that answers is counted as on TCP.
    """
    silence = Silence()
    registers = [
        {"name": "ok", "address": 0, "device_id": ALIVE},
        {"name": "nowhere", "address": 400, "device_id": ALIVE},  # outside its valid range
        {"name": "dead", "address": 0, "device_id": DEAD},
    ]
    with pty_pair(tmp_path) as (server_tty, client_tty):
        peer = await start_rtu([device(ALIVE), device(DEAD, silence=silence)], server_tty, silence)
        started = time.time()
        src = ModbusSource(ModbusSourceConfig.model_validate({
            "type": "modbus", "name": "line", "url": f"rtu://{client_tty}", "interval": "500ms",
            "timeout": "200ms", "serial": {"baud": 9600, "stop_bits": 2},  # a pty refuses parity
            "registers": registers,
        }))  # fmt: skip
        try:
            async with serving_sources([src], tmp_path, web := free_port()) as (stats,):
                await poll_for(src, stats, 3.0)
                series = await asyncio.to_thread(scrape, web)
        finally:
            await peer.stop()
    _check_alive(series, peer)
    _check_dead(series, peer, started)
    failed = "edge_agent_modbus_failed_requests_total"
    for unit in (ALIVE, DEAD):
        assert unit_series(series, failed, unit, kind="connection_lost") == 0
        assert unit_series(series, failed, unit, kind="malformed") == 0
    assert value(series, "edge_agent_source_outages_total", source="line") == 0


def _check_api(api: dict[str, Any], series: Series) -> None:
    (line,) = api["sources"]
    units = {u["unit"]: u for u in line["units"]}
    assert sorted(units) == [ALIVE, DEAD, BUSY]
    assert line["opcua"] is None
    dead, busy_unit = units[DEAD], units[BUSY]
    assert dead["backoff"] is True and dead["backoff_since"] is not None
    assert dead["timeouts"] == unit_series(series, "edge_agent_modbus_requests_total", DEAD)
    assert busy_unit["exceptions"] == {"6": busy_unit["requests"]}
    assert busy_unit["backoff"] is False and busy_unit["backoff_since"] is None
    assert units[ALIVE]["answers"] > 0 and units[ALIVE]["mean_response_ms"] > 0


async def test_a_request_cut_by_a_lost_connection_is_counted(tmp_path: Path, port: int) -> None:
    silence = Silence()
    peer = await start_tcp([device(DEAD, silence=silence)], port)
    registers = [{"name": "dead", "address": 0, "device_id": DEAD}]
    raw = {"type": "modbus", "name": "line", "url": f"tcp://127.0.0.1:{port}", "interval": "5s"}
    src = ModbusSource(ModbusSourceConfig.model_validate({**raw, "timeout": "4s",
                                                          "registers": registers}))  # fmt: skip
    async with serving_sources([src], tmp_path, web := free_port()) as (stats,):
        task = asyncio.create_task(poll_forever(src, lambda _batch: None, stats))
        try:
            await asyncio.wait_for(peer.wire.arrived.wait(), 10)
            await peer.stop()  # the request waits for its reply: the connection drops under it
            series = await _until_lost(web)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    failed = "edge_agent_modbus_failed_requests_total"
    assert unit_series(series, failed, DEAD, kind="connection_lost") == 1
    assert unit_series(series, failed, DEAD, kind="timeout") == 0
    assert unit_series(series, "edge_agent_modbus_requests_total", DEAD) == 1
    assert value(series, "edge_agent_source_outages_total", source="line") == 1


async def _until_lost(port: int) -> Series:
    """Scrape until the poll loop has seen the loss (its outage counter), at most 3 s."""
    deadline = time.monotonic() + 3.0  # well under the request's 4 s timeout
    while True:
        series = await asyncio.to_thread(scrape, port)
        if value(series, "edge_agent_source_outages_total", source="line") >= 1:
            return series
        assert time.monotonic() < deadline, "the loss was not seen before the timeout"
        await asyncio.sleep(0.05)


async def test_the_whole_agent_serves_the_unit_counters(tmp_path: Path, port: int) -> None:
    """``edge-agent run`` as the service runs it: its own site view, its own poll loops."""
    devices = [device(ALIVE), device(BUSY)]
    devices[1].action = busy
    peer = await start_tcp(devices, port)
    web = free_port()
    registers = [{"name": "ok", "address": 0, "device_id": ALIVE},
                 {"name": "busy", "address": 0, "device_id": BUSY}]  # fmt: skip
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({
        "agent": {"id": "gw-test", "data_dir": str(tmp_path / "data")},
        "sources": [{"type": "modbus", "name": "line", "url": f"tcp://127.0.0.1:{port}",
                     "interval": "200ms", "registers": registers}],
        "web": {"listen": f"127.0.0.1:{web}"},
    }))  # fmt: skip
    agent = asyncio.create_task(run_agent(load_config(path)))
    try:
        await listening(web, within=30)
        series = await until(web, lambda s: _busy_counted(s) >= 3, within=30)
        api = await asyncio.to_thread(status, web)
    finally:
        agent.cancel()
        await asyncio.gather(agent, return_exceptions=True)
        await peer.stop()
    assert unit_series(series, "edge_agent_modbus_requests_total", BUSY) >= _busy_counted(series)
    assert unit_series(series, "edge_agent_modbus_requests_total", ALIVE) >= 3
    assert (
        unit_series(series, "edge_agent_modbus_failed_requests_total", ALIVE, kind="exception") == 0
    )
    units = {u["unit"]: u for u in api["sources"][0]["units"]}
    assert units[BUSY]["exceptions"]["6"] >= 3 and units[ALIVE]["answers"] >= 3


def _busy_counted(series: Series) -> float:
    labels = {"code": "6", "name": "server_device_busy"}
    return unit_series(series, "edge_agent_modbus_exceptions_total", BUSY, **labels)


async def short_replies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A Modbus TCP peer that answers every read with one register fewer than asked."""
    try:
        while True:
            head = await reader.readexactly(7)  # MBAP: transaction, protocol, length, unit
            tid, _, length, unit = struct.unpack(">HHHB", head)
            pdu = await reader.readexactly(length - 1)
            function, _address, count = struct.unpack(">BHH", pdu[:5])
            data = bytes(2 * (count - 1))
            body = struct.pack(">BBB", unit, function, len(data)) + data
            writer.write(struct.pack(">HHH", tid, 0, len(body)) + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def test_a_reply_that_does_not_fit_the_request_is_counted_malformed(
    tmp_path: Path, port: int
) -> None:
    server = await asyncio.start_server(short_replies, "127.0.0.1", port)
    registers = [{"name": "a", "address": 0, "device_id": ALIVE},
                 {"name": "b", "address": 1, "device_id": ALIVE}]  # fmt: skip
    raw = {"type": "modbus", "name": "line", "url": f"tcp://127.0.0.1:{port}", "interval": "200ms"}
    src = ModbusSource(ModbusSourceConfig.model_validate({**raw, "registers": registers}))
    try:
        async with serving_sources([src], tmp_path, web := free_port()) as (stats,):
            await poll_for(src, stats, 1.0)
            series = await asyncio.to_thread(scrape, web)
    finally:
        server.close()
        await server.wait_closed()
    sent = unit_series(series, "edge_agent_modbus_requests_total", ALIVE)
    assert sent >= 3
    failed = "edge_agent_modbus_failed_requests_total"
    assert unit_series(series, failed, ALIVE, kind="malformed") == sent
    assert unit_series(series, failed, ALIVE, kind="exception") == 0
    assert unit_series(series, "edge_agent_modbus_response_seconds_count", ALIVE) == sent
