"""OPC UA source: batched polling and subscriptions over asyncua.

Polled groups are read when due (each at its own multiple of the tick), the
due ones together in one Read request, split at the server's MaxNodesPerRead
or, when the server refuses a request as too big, at the size learned by
halving it. Subscribed nodes are monitored items whose
notifications are buffered and returned by the next ``read()``. Both carry the
device's source timestamp and status severity into ``Sample.ts`` and quality.

asyncua is imported inside functions only: it costs 0.43 s at import and a
config without OPC UA must not pay it. Recovery is the poll loop's: a lost
session raises SourceError, the loop re-enters, and ``__aenter__`` builds a new
session, resolves browse paths again and recreates the subscriptions. Samples
already delivered are not delivered again (see SampleMaker).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Self

from edge_agent.errors import SourceError, WriteError
from edge_agent.sources.opcua.nodes import OpcuaGroupConfig, OpcuaWriteConfig, Resolved
from edge_agent.sources.opcua.values import SampleMaker
from edge_agent.types import ReadBack, Sample, SignalInfo

if TYPE_CHECKING:
    from asyncua.client.client import Client

    from edge_agent.sources.opcua.session import Poller
    from edge_agent.sources.opcua.subscribe import Subscriptions
from edge_agent.sources.opcua.config import OpcuaSourceConfig, signal_name

log = logging.getLogger(__name__)


class OpcuaSource:
    """Reads OPC UA variables by polling and by subscription."""

    def __init__(self, config: OpcuaSourceConfig) -> None:
        self.config = config
        # Outlives sessions on purpose: it remembers what was delivered, so a
        # recreated subscription's initial values are not delivered twice.
        self._maker = SampleMaker(config.timestamps)
        self._client: Client | None = None
        self._poller: Poller | None = None
        self._subs: Subscriptions | None = None
        # Nodes per Read learned from a server that refused bigger ones (0: none
        # learned); kept across sessions so a reconnect does not pay the refusals again.
        self._read_size = 0

    def signals(self) -> list[SignalInfo]:
        """The catalogue, from config."""
        infos = []
        for group in self.config.groups:
            interval = self._group_interval(group)
            for node in group.nodes:
                infos.append(
                    SignalInfo(
                        signal=signal_name(self.config.name, node),
                        source=self.config.name,
                        interval=interval,
                        asset=node.asset or self.config.asset,
                        unit=node.unit,
                        description=node.description,
                    )
                )
        return infos

    def _group_interval(self, group: OpcuaGroupConfig) -> float:
        if group.mode == "poll":
            return group.interval or self.config.interval
        return group.sampling_interval or group.publishing_interval or self.config.interval

    async def __aenter__(self) -> Self:
        """Open a session, resolve nodes, create subscriptions.

        Raises:
            SourceError: unreachable server, refused security or identity.
        """
        from edge_agent.sources.opcua.session import open_client

        self._client = await open_client(self.config)
        try:
            await self._prepare(self._client)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _prepare(self, client: Client) -> None:
        from edge_agent.sources.opcua.session import Poller, max_nodes_per_read, translate_errors
        from edge_agent.sources.opcua.subscribe import Subscriptions

        with translate_errors(self.config.name, self.config):
            limits = [n for n in (await max_nodes_per_read(client), self._read_size) if n]
            polled = [
                (self._group_interval(g), await self._resolve(client, [g]))
                for g in self.config.groups
                if g.mode == "poll"
            ]
            tick = self.config.interval
            self._poller = Poller(polled, tick, min(limits, default=0), self.config.name)
            self._subs = subs = Subscriptions(client, self.config)
            for group in self.config.groups:
                if group.mode == "subscribe":
                    await subs.add(group, await self._resolve(client, [group]))

    async def _resolve(self, client: Client, groups: list[OpcuaGroupConfig]) -> list[Resolved]:
        from edge_agent.sources.opcua.session import resolve

        nodes = [node for group in groups for node in group.nodes]
        signals = [signal_name(self.config.name, node) for node in nodes]
        return await resolve(client, signals, nodes) if nodes else []

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the session (the server drops its subscriptions with it)."""
        client, subs = self._client, self._subs
        self._client = self._subs = self._poller = None
        if subs is not None:
            await subs.close()
        if client is not None:
            await _close(client)

    async def read(self) -> list[Sample]:
        """One tick: polled values now, plus notifications received since the last tick.

        Raises:
            SourceError: the session is lost.
        """
        from edge_agent.sources.opcua.session import check_alive, translate_errors

        client, subs, poller = self._client, self._subs, self._poller
        if client is None or subs is None or poller is None:
            raise SourceError(f"{self.config.name}: read() outside `async with`")
        with translate_errors(self.config.name, self.config):
            check_alive(client, self.config.name)
            await subs.watch()
            now = time.time()
            samples = self._maker.make_all(subs.drain(), now)
            if poller.nodes:
                due = poller.due(asyncio.get_running_loop().time())
                samples.extend(self._maker.make_all(await poller.read(client, due), now))
                self._read_size = poller.learned or self._read_size
        return samples

    def writable(self) -> dict[str, tuple[OpcuaWriteConfig, bool]]:
        """The nodes with a ``write:`` block: their limits, and whether they are Boolean."""
        from edge_agent.sources.opcua.write import writable_nodes

        return writable_nodes(self.config)

    async def write(self, signal: str, value: float | int | bool) -> ReadBack:
        """Write one node on this session and read it back (see ``opcua/write.py``).

        Raises:
            ValueError: the node's type cannot hold ``value`` (nothing sent).
            WriteError: not writable, not connected, or refused by the server.
            SourceError: the session failed.
        """
        from edge_agent.sources.opcua.write import write_signal

        if self._client is None:
            raise WriteError(f"{self.config.name}: not connected to {self.config.url}")
        return await write_signal(self._client, self.config, signal, value)


async def _close(client: Any) -> None:
    from edge_agent.sources.opcua.session import close_client

    await close_client(client)
