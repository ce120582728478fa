"""The plant's OPC UA server: asyncua serving the nodes of ``layout.py``.

No security (the plant is a loopback practice peer). asyncua is imported here
only, when the plant starts: it is slow to import and to initialise (about 2 s).
"""

from __future__ import annotations

import logging
from datetime import UTC
from typing import Any

from edge_agent.sim.signal_map import OPCUA_NAMESPACE, OPCUA_NODES, OPCUA_NS_INDEX

log = logging.getLogger(__name__)


def quiet_server_logs() -> None:
    """Keep asyncua's server-side warnings out of the demo's output.

    Without security policies the server warns that certificates and passwords
    cannot be protected: true, and irrelevant for a loopback practice plant.
    Only the server's loggers are touched (the agent's client logs as before),
    and only if nobody configured them.
    """
    server_log = logging.getLogger("asyncua.server")
    if server_log.level == logging.NOTSET:
        server_log.setLevel(logging.ERROR)


class SimOpcuaServer:
    """An asyncua server on ``opc.tcp://host:port/edge-agent/sim`` with the plant's nodes.

    Args:
        host: address to listen on.
        port: TCP port to listen on.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: Any = None
        self._node_ids: dict[str, Any] = {}

    @property
    def url(self) -> str:
        """The endpoint URL clients connect to."""
        return f"opc.tcp://{self.host}:{self.port}/edge-agent/sim"

    async def start(self, values: dict[str, float]) -> None:
        """Build the address space with ``values`` as initial values, and listen.

        Raises:
            OSError: the address cannot be bound.
        """
        from asyncua import ua
        from asyncua.server.server import Server

        quiet_server_logs()
        server = Server()
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name("edge-agent simulated pump skid")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(OPCUA_NAMESPACE)
        if idx != OPCUA_NS_INDEX:  # layout.py documents node ids with ns=2
            raise RuntimeError(f"namespace got index {idx}, expected {OPCUA_NS_INDEX}")
        await self._build(server, values)
        await server.start()
        self._server = server
        log.debug("opcua server listening on %s", self.url)

    async def _build(self, server: Any, values: dict[str, float]) -> None:
        from asyncua import ua

        ns = OPCUA_NS_INDEX
        plant = await server.nodes.objects.add_folder(f"ns={ns};s=Plant", f"{ns}:Plant")
        pump = await plant.add_object(f"ns={ns};s=Pump1", f"{ns}:Pump1")
        for node in OPCUA_NODES:
            var = await pump.add_variable(
                node.node_id,
                f"{ns}:{node.browse_name}",
                float(values[node.signal]),
                varianttype=ua.VariantType.Double,
            )
            self._node_ids[node.signal] = var.nodeid

    async def write(self, values: dict[str, float], ts: float) -> None:
        """Publish one reading, stamped with ``ts`` (epoch seconds) as source time."""
        from asyncua import ua

        stamp = ua.DateTime.fromtimestamp(ts, UTC)
        for signal, node_id in self._node_ids.items():
            variant = ua.Variant(float(values[signal]), ua.VariantType.Double)
            data = ua.DataValue(variant, SourceTimestamp=stamp, ServerTimestamp=stamp)
            await self._server.write_attribute_value(node_id, data)

    async def pause(self) -> None:
        """Stop listening (sessions are dropped); the address space is kept for :meth:`resume`."""
        if self._server is not None:
            await self._server.stop()

    async def resume(self) -> None:
        """Listen again after :meth:`pause`, on the same endpoint."""
        if self._server is not None:
            await self._server.start()

    async def stop(self) -> None:
        """Stop listening and drop every session."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
