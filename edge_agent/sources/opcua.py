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
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import Field, model_validator

from edge_agent.errors import SourceError
from edge_agent.schema import Duration, StrictModel
from edge_agent.sources.opcua_nodes import OpcuaGroupConfig, OpcuaNodeConfig, Resolved
from edge_agent.sources.opcua_security import OpcuaAuthConfig, OpcuaSecurityConfig
from edge_agent.sources.opcua_values import SampleMaker, TimestampChoice
from edge_agent.types import Sample, SignalInfo

if TYPE_CHECKING:
    from asyncua.client.client import Client

    from edge_agent.sources.opcua_session import Poller
    from edge_agent.sources.opcua_subscribe import Subscriptions

log = logging.getLogger(__name__)


class OpcuaSourceConfig(StrictModel):
    """Config of an OPC UA source.

    Attributes:
        type: ``opcua``.
        name: source name, prefix of its signals.
        interval: tick of the poll loop: polled groups that are due are read,
            buffered notifications returned, and the session checked, every tick.
        asset: default asset of its signals.
        url: ``opc.tcp://host:port[/path]``.
        application_uri: our ApplicationUri; must match our certificate's
            (default ``urn:<hostname>:edge-agent``, as ``opcua gen-cert`` writes).
        timeout: per request.
        session_timeout: how long the server keeps our session without traffic.
        timestamps: which time becomes ``Sample.ts``: ``source`` (device),
            ``server`` or ``gateway`` (this clock at receipt).
        keepalive_count: subscribe: publishing intervals without data after which the
            server sends a keep-alive.
        silence_timeout: subscribe: no publish response (data or keep-alive) for this
            long means the subscription is dead; it is rebuilt (default: 3 keep-alive periods).
        security: secure channel policy, mode, certificates and trust list.
        auth: user identity.
        groups: nodes, each group polled or subscribed.
    """

    type: Literal["opcua"]
    name: str
    interval: Duration = 1.0
    asset: str = ""
    url: str = Field(pattern=r"^opc\.tcp://.+")
    application_uri: str = ""
    timeout: Duration = 5.0
    session_timeout: Duration = 60.0
    timestamps: TimestampChoice = "source"
    keepalive_count: int = Field(default=10, ge=1, le=1000)
    silence_timeout: Duration | None = None
    security: OpcuaSecurityConfig = OpcuaSecurityConfig()
    auth: OpcuaAuthConfig = OpcuaAuthConfig()
    groups: list[OpcuaGroupConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [node.name.lower() for group in self.groups for node in group.nodes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"node names repeat: {', '.join(repeated)}")
        for i, group in enumerate(self.groups):
            ticks = (group.interval or self.interval) / self.interval
            if ticks < 1 or abs(ticks - round(ticks)) > 1e-6:
                raise ValueError(
                    f"groups[{i}].interval ({group.interval} s) must be a multiple of the "
                    f"source's interval ({self.interval} s), which is how often it polls"
                )
        return self


def signal_name(source: str, node: OpcuaNodeConfig) -> str:
    """The signal a node feeds: ``<source>.<name>``, lowercase."""
    return f"{source}.{node.name}".lower()


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
        from edge_agent.sources.opcua_session import open_client

        self._client = await open_client(self.config)
        try:
            await self._prepare(self._client)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _prepare(self, client: Client) -> None:
        from edge_agent.sources.opcua_session import Poller, max_nodes_per_read, translate_errors
        from edge_agent.sources.opcua_subscribe import Subscriptions

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
        from edge_agent.sources.opcua_session import resolve

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
        from edge_agent.sources.opcua_session import check_alive, translate_errors

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


async def _close(client: Any) -> None:
    from edge_agent.sources.opcua_session import close_client

    await close_client(client)
