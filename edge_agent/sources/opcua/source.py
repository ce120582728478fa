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

Nothing received is lost with a session: notifications live in an ``Inbox``
that outlives sessions, and a ``read()`` that finds the session lost first
returns what was received (the loss is raised by the next ``read()``); what is
still in flight when the poll loop leaves the session is moved to the inbox by
``__aexit__`` and returned by the first ``read()`` of the next session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from edge_agent.errors import SourceError, WriteError
from edge_agent.sources.opcua.config import OpcuaSourceConfig, signal_name
from edge_agent.sources.opcua.counters import OpcuaCounts
from edge_agent.sources.opcua.node_list import NodeRow, OpcuaWriteConfig
from edge_agent.sources.opcua.nodes import OpcuaGroupConfig, Resolved
from edge_agent.sources.opcua.values import SampleMaker
from edge_agent.types import ReadBack, Sample, SignalInfo

if TYPE_CHECKING:
    from asyncua.client.client import Client

    from edge_agent.sources.opcua.problems import NodeProblems
    from edge_agent.sources.opcua.session import Arrivals, Loss, Poller
    from edge_agent.sources.opcua.subscribe import Inbox, Subscriptions

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
        self._loss: Loss | None = None
        # Made at the first connect (they need asyncua), then kept across sessions.
        self._inbox: Inbox | None = None
        self._problems: NodeProblems | None = None
        self._arrivals: Arrivals | None = None
        self._lost: SourceError | None = None  # found by a read that still had samples
        self._unfiltered: set[str] = set()  # signals whose deadband the server refused
        # Nodes per Read learned from a server that refused bigger ones (0: none
        # learned); kept across sessions so a reconnect does not pay the refusals again.
        self._read_size = 0
        self._refused_port = False  # the last connect found nothing listening
        self._counts = OpcuaCounts()  # since start, across sessions

    def link_counts(self) -> OpcuaCounts:
        """Sessions, subscription rebuilds, split Reads and data changes since start."""
        self._counts.data_changes = self._inbox.received if self._inbox is not None else 0
        return self._counts

    def books(self) -> dict[str, int]:
        """Counts since start that show nothing received was lost.

        ``arrived`` (notifications asyncua received) equals ``taken`` (taken from
        asyncua into the inbox); ``received + made`` (data changes, and BAD values
        for nodes that could not be monitored) equals what left the inbox: samples
        returned, ``repeats`` dropped as already delivered, ``lost`` to a full buffer,
        and ``pending`` (still in the inbox: at a stop, at most one tick's worth).
        """
        inbox = self._inbox
        return {
            "arrived": self._arrivals.count if self._arrivals is not None else 0,
            "taken": inbox.taken if inbox is not None else 0,
            "received": inbox.received if inbox is not None else 0,
            "made": inbox.made if inbox is not None else 0,
            "lost": inbox.lost if inbox is not None else 0,
            "pending": len(inbox.items) if inbox is not None else 0,
            "repeats": self._maker.repeats,
        }

    def problems(self) -> dict[str, str]:
        """``signal -> "node: status"`` for each node the server cannot read now."""
        return self._problems.problems() if self._problems is not None else {}

    def signals(self) -> list[SignalInfo]:
        """The catalogue, from config."""
        infos = []
        for group in self.config.groups:
            interval = self._group_interval(group)
            for node in group.rows():
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

    def _nodes(self) -> dict[str, NodeRow]:
        return {signal_name(self.config.name, n): n for g in self.config.groups for n in g.rows()}

    async def __aenter__(self) -> Self:
        """Open a session, resolve nodes, create subscriptions.

        Raises:
            SourceError: unreachable server, refused security or identity.
        """
        from edge_agent.sources.opcua.session import Loss, open_client

        self._start()
        self._loss = Loss(self.config.timeout)
        try:
            self._client = await open_client(self.config, self._loss, self._arrivals)
        except SourceError as exc:
            self._refused_port = isinstance(exc.__cause__, ConnectionRefusedError)
            raise
        try:
            await self._prepare(self._client)
        except BaseException:
            await self.__aexit__()
            raise
        self._counts.sessions += 1
        return self

    def _start(self) -> None:
        from edge_agent.sources.opcua.problems import NodeProblems
        from edge_agent.sources.opcua.session import Arrivals
        from edge_agent.sources.opcua.subscribe import Inbox

        if self._arrivals is None:
            self._arrivals = Arrivals()
        if self._inbox is None:
            self._inbox = Inbox(self.config.name)
        if self._problems is None:
            labels = {s: n.node or n.path for s, n in self._nodes().items()}
            self._problems = NodeProblems(labels)

    async def _prepare(self, client: Client) -> None:
        from edge_agent.sources.opcua.session import Poller, max_nodes_per_read, translate_errors
        from edge_agent.sources.opcua.subscribe import Subscriptions

        assert self._inbox is not None
        with translate_errors(self.config.name, self.config):
            limits = [n for n in (await max_nodes_per_read(client), self._read_size) if n]
            polled = [
                (self._group_interval(g), await self._resolve(client, [g]))
                for g in self.config.groups
                if g.mode == "poll"
            ]
            tick = self.config.interval
            size = min(limits, default=0)
            self._poller = Poller(polled, tick, size, self.config.name, self._counts)
            self._subs = subs = Subscriptions(
                client,
                self.config,
                self._inbox,
                lambda signals: self._resolve_signals(client, signals),
                self._unfiltered,
                self._counts,
            )
            for group in self.config.groups:
                if group.mode == "subscribe":
                    await subs.add(group, await self._resolve(client, [group]))

    async def _resolve(self, client: Client, groups: list[OpcuaGroupConfig]) -> list[Resolved]:
        from edge_agent.sources.opcua.session import resolve

        nodes = [node for group in groups for node in group.rows()]
        signals = [signal_name(self.config.name, node) for node in nodes]
        return await resolve(client, signals, nodes) if nodes else []

    async def _resolve_signals(self, client: Client, signals: list[str]) -> list[Resolved]:
        from edge_agent.sources.opcua.session import resolve

        nodes = self._nodes()
        return await resolve(client, signals, [nodes[s] for s in signals]) if signals else []

    async def __aexit__(self, *exc_info: object) -> None:
        """Hand what was received over to the inbox, then close the session.

        The server drops our subscriptions with the session.
        """
        client, subs = self._client, self._subs
        self._client = self._subs = self._poller = None
        if subs is not None:
            await subs.close()
        if client is not None:
            await _close(client, self._lost_session(client))

    def _lost_session(self, client: Client) -> bool:
        from asyncua.client.ua_client import UaClientState

        lost = self._loss is not None and bool(self._loss.reason)
        return lost or client.uaclient.state is not UaClientState.CONNECTED

    async def read(self) -> list[Sample]:
        """One tick: notifications received since the last tick, plus polled values now.

        A read that finds the session lost still returns what was received before;
        the loss is raised by the next call.

        Raises:
            SourceError: the session is lost.
        """
        if self._lost is not None:
            lost, self._lost = self._lost, None
            raise lost
        client, subs, poller = self._client, self._subs, self._poller
        if client is None or subs is None or poller is None:
            raise SourceError(f"{self.config.name}: read() outside `async with`")
        from edge_agent.sources.opcua.session import check_alive, translate_errors

        assert self._loss is not None
        now = time.time()
        try:
            with translate_errors(self.config.name, self.config):
                check_alive(client, self.config.name, self._loss)
                await subs.watch()
        except SourceError as exc:
            return await self._salvage(subs, exc, [], now)
        samples = self._received(now)
        if not poller.nodes:
            return samples
        try:
            with translate_errors(self.config.name, self.config):
                due = poller.due(asyncio.get_running_loop().time())
                polled = await poller.read(client, due)
        except SourceError as exc:
            return await self._salvage(subs, exc, samples, now)
        self._read_size = poller.learned or self._read_size
        return samples + self._make(polled, now)

    async def _salvage(
        self, subs: Subscriptions, exc: SourceError, samples: list[Sample], now: float
    ) -> list[Sample]:
        """What was received before the loss, if anything; else the loss itself."""
        await subs.close()  # the pumps stop: what they held is in the inbox now
        samples = samples + self._received(now)
        if not samples:
            raise exc
        self._lost = exc
        return samples

    def _received(self, now: float) -> list[Sample]:
        return self._make(self._inbox.drain(), now) if self._inbox is not None else []

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

    def _make(self, items: list[tuple[str, Any]], now: float) -> list[Sample]:
        if self._problems is not None:
            self._problems.check_all(items)
        return self._maker.make_all(items, now)

    async def pause(self, delay: float) -> None:
        """Wait ``delay`` before the next connect, or less once a refusing server listens again.

        While the last connect found its port closed (a server restarting), the
        port is tried every ``backoff`` (a bare TCP connect, no OPC UA traffic):
        the wait ends as soon as it accepts. A server that accepts connections but
        refuses or drops the session gets the whole wait.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + delay
        while self._refused_port and loop.time() < end:
            await asyncio.sleep(min(self.config.backoff, max(0.0, end - loop.time())))
            if await self._listening():
                return
        await asyncio.sleep(max(0.0, end - loop.time()))

    async def _listening(self) -> bool:
        parts = urlsplit(self.config.url)
        host, port = parts.hostname or "localhost", parts.port or 4840
        try:
            # Not wait_for: on 3.11 it can eat the stop that comes with the refusal,
            # and the wait would run on to its end.
            async with asyncio.timeout(self.config.timeout):
                _reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True


async def _close(client: Any, lost: bool) -> None:
    from edge_agent.sources.opcua.session import close_client

    await close_client(client, lost)
