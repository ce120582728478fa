"""The simulated plant: the pump skid served over Modbus TCP, OPC UA and a serial pty.

``async with Plant() as plant:`` starts the three peers on loopback (free ports
unless given), then refreshes them from :class:`~edge_agent.sim.physics.PumpSkid`
every ``update_interval`` seconds, driven by the time since the plant became
ready (the scenario's clock: a demo fault "at 20 s" starts 20 s after
``__aenter__`` returns). Addresses are attributes; :meth:`Plant.source_configs`
renders the matching agent source config. The register and node map is in
:mod:`edge_agent.sim.signal_map`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time
from collections.abc import AsyncIterator
from typing import Any, Self

from edge_agent.sim.modbus_server import SimModbusServer
from edge_agent.sim.opcua_server import SimOpcuaServer
from edge_agent.sim.physics import PumpSkid, probe_line
from edge_agent.sim.probe_port import ProbePort
from edge_agent.sim.scenario import Scenario
from edge_agent.sim.signal_map import PROBE_EOL, encode_registers

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def garble(line: str, n: int) -> bytes:
    """A corrupted version of a probe line, one of three kinds picked by ``n``.

    Line noise (undecodable bytes), unreadable values, or a line cut short that
    runs into the next one.
    """
    kind = n % 3
    if kind == 0:
        return b"\xff\xfe\x00VIB\x9b,rms=\x07" + PROBE_EOL.encode()
    if kind == 1:
        return re.sub(r"\d", "#", line).encode()
    return line[: len(line) // 2].encode()


class Plant:
    """The simulated pump skid and its three peers, as an async context manager.

    Args:
        scenario: fault schedule: ``demo``, ``commissioning``, ``normal`` or a Scenario.
        seed: noise seed of the physics.
        host: address the servers listen on.
        modbus_port: Modbus TCP port; 0 picks a free one.
        opcua_port: OPC UA port; 0 picks a free one.
        opcua: serve OPC UA (asyncua takes about 2 s to start).
        serial: serve the vibration probe on a socat pty pair.
        update_interval: seconds between refreshes of the served values.
        probe_interval: seconds between two probe lines.
        speed: plant seconds per wall-clock second (10 plays the 35-minute
            commissioning scenario in 3.5 minutes).

    Attributes:
        modbus_port: the Modbus TCP port (known after entering).
        opcua_port: the OPC UA port (known after entering).
        serial_path: the probe's device path for the agent ("" when not serving it).
        values: the latest reading of every signal.
        updates: how many refreshes so far (the Modbus heartbeat register).
        started_at: epoch seconds of plant time 0 (when ``__aenter__`` returned).
    """

    def __init__(
        self,
        scenario: Scenario | str = "demo",
        seed: int = 0,
        host: str = "127.0.0.1",
        modbus_port: int = 0,
        opcua_port: int = 0,
        opcua: bool = True,
        serial: bool = True,
        update_interval: float = 0.15,
        probe_interval: float = 1.0,
        speed: float = 1.0,
    ) -> None:
        self.skid = PumpSkid(seed, scenario)
        self.host = host
        self.modbus_port = modbus_port
        self.opcua_port = opcua_port
        self.serve_opcua = opcua
        self.serve_serial = serial
        self.update_interval = update_interval
        self.probe_interval = probe_interval
        self.speed = speed
        self.serial_path = ""
        self.started_at = 0.0
        self.values: dict[str, float] = {}
        self.updates = 0
        self._modbus: SimModbusServer | None = None
        self._opcua: SimOpcuaServer | None = None
        self._probe: ProbePort | None = None
        self._task: asyncio.Task[None] | None = None
        self._t0 = 0.0
        self._next_probe = 0.0
        self._scheduled_offline = False

    @property
    def scenario(self) -> Scenario:
        """The fault schedule being played."""
        return self.skid.scenario

    @property
    def modbus_url(self) -> str:
        """``tcp://host:port`` of the Modbus server."""
        return f"tcp://{self.host}:{self.modbus_port}"

    @property
    def opcua_url(self) -> str:
        """``opc.tcp://host:port/edge-agent/sim`` of the OPC UA server ("" when off)."""
        return self._opcua.url if self._opcua is not None else ""

    def elapsed(self) -> float:
        """Plant time: seconds since the plant became ready, times ``speed``."""
        return (asyncio.get_running_loop().time() - self._t0) * self.speed

    async def __aenter__(self) -> Self:
        """Start the servers and the refresh task.

        Raises:
            OSError: a port cannot be bound or socat cannot start.
        """
        self.values = self.skid.at(0.0)
        try:
            await self._start_peers()
        except BaseException:
            await self._stop_peers()
            raise
        self._refresh(0.0)
        self._t0 = asyncio.get_running_loop().time()
        self.started_at = time.time()
        self._task = asyncio.create_task(self._update_forever(), name="plant-update")
        log.info("plant ready: modbus %s, opcua %s, probe %s", self.modbus_url,
                 self.opcua_url or "off", self.serial_path or "off")  # fmt: skip
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop refreshing and close every peer."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])  # waits without re-raising its cancellation
            self._task = None
        await self._stop_peers()

    async def _start_peers(self) -> None:
        self.modbus_port = self.modbus_port or free_port(self.host)
        self._modbus = SimModbusServer(self.host, self.modbus_port)
        await self._modbus.start()
        if self.serve_serial:
            self._probe = ProbePort()
            await self._probe.open()
            self.serial_path = self._probe.path
        if self.serve_opcua:
            self.opcua_port = self.opcua_port or free_port(self.host)
            self._opcua = SimOpcuaServer(self.host, self.opcua_port)
            await self._opcua.start(self.values)

    async def _stop_peers(self) -> None:
        # Close all three even if one fails: a leaked socat or port outlives the test.
        peers = (self._opcua, self._probe, self._modbus)
        closers = [p.stop() if not isinstance(p, ProbePort) else p.close() for p in peers if p]
        self._opcua, self._probe, self._modbus = None, None, None
        results = await asyncio.gather(*closers, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.warning("plant: error while closing a peer: %s", result)

    async def _update_forever(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            deadline += self.update_interval
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            try:
                await self.step()
            except Exception:  # top of a *_forever loop: keep the plant alive
                log.exception("plant: update failed")

    async def step(self) -> None:
        """Advance the physics to now and publish the reading on every peer."""
        t = self.elapsed()
        self.values = self.skid.at(max(t, 0.0))
        await self._schedule_modbus(self.scenario.on("modbus_offline", t))
        self._refresh(t)
        if self._opcua is not None:
            await self._opcua.write(self.values, time.time())

    async def _schedule_modbus(self, offline: bool) -> None:
        if self._modbus is None or offline == self._scheduled_offline:
            return
        if offline:
            log.info("plant: modbus server going offline (scenario)")
            await self._modbus.stop()
        else:
            await self._modbus.start()
            log.info("plant: modbus server back online (scenario)")
        self._scheduled_offline = offline

    def _refresh(self, t: float) -> None:
        self.updates += 1
        if self._modbus is not None:
            self._modbus.bank = encode_registers(self.values, self.updates)
        if self._probe is not None and t >= self._next_probe:
            line = probe_line(self.values) + PROBE_EOL
            garbage = self.scenario.on("probe_garbage", t)
            self._probe.write(garble(line, self.updates) if garbage else line)
            self._next_probe = t + self.probe_interval * self.speed

    def write_probe(self, data: str | bytes) -> bool:
        """Send raw text on the probe's line (e.g. garbage, for fault tests)."""
        return self._probe.write(data) if self._probe is not None else False

    @contextlib.asynccontextmanager
    async def modbus_outage(self) -> AsyncIterator[None]:
        """Stop the Modbus server (dropping its clients) and restart it on the same port after."""
        if self._modbus is None:
            raise RuntimeError("the plant's Modbus server is not running")
        await self._modbus.stop()
        try:
            yield
        finally:
            await self._modbus.start()

    @contextlib.asynccontextmanager
    async def opcua_outage(self) -> AsyncIterator[None]:
        """Stop the OPC UA server (dropping its sessions) and restart it on the same port after.

        The address space and the value updates carry on meanwhile; restarting
        takes well under a second (no second ``init``).
        """
        if self._opcua is None:
            raise RuntimeError("the plant's OPC UA server is not running")
        await self._opcua.pause()
        try:
            yield
        finally:
            await self._opcua.resume()

    def source_configs(self, interval: str = "1s") -> list[dict[str, Any]]:
        """The agent's source configs for this plant (see :func:`edge_agent.sim.agent_config`)."""
        from edge_agent.sim.agent_config import source_configs

        return source_configs(self, interval)
