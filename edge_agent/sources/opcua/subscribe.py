"""OPC UA subscriptions of a source: monitored items, a buffer, and a silence watch.

Each subscribed group is one OPC UA subscription. A small task per
subscription moves its notifications into a bounded buffer that ``read()``
drains. A subscription that stops answering (no data and no keep-alive for
``silence_timeout``), or that the server reports closed, is deleted and built
again on the same session: the "connected but receiving nothing" failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from asyncua import ua as _ua
from asyncua.client.client import Client
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription

from edge_agent.sources.opcua.nodes import OpcuaGroupConfig, Resolved

if TYPE_CHECKING:
    from edge_agent.sources.opcua.config import OpcuaSourceConfig

log = logging.getLogger(__name__)
# asyncua's generated ua types (Int32/Boolean classes, implicit re-exports) do not
# type-check under mypy --strict; the namespace is used as dynamic on purpose.
ua: Any = _ua

BUFFER = 200_000  # notifications kept between two reads; beyond it the oldest go
_LIFETIME_KEEPALIVES = 6  # the spec asks for a lifetime of at least 3 keep-alive periods


@dataclass
class _Entry:
    """One live subscription and what it needs to be built again."""

    group: OpcuaGroupConfig
    nodes: list[Resolved]
    sub: Subscription
    signals: dict[int, str]
    pump: asyncio.Task[None]
    created: float = field(default_factory=time.monotonic)
    closed: str = ""  # a status-change reason from the server, when it ended the subscription


class Subscriptions:
    """The subscriptions of one session, and the notifications they brought."""

    def __init__(self, client: Client, config: OpcuaSourceConfig) -> None:
        self.client = client
        self.config = config
        self.entries: list[_Entry] = []
        self.buffer: deque[tuple[str, Any]] = deque(maxlen=BUFFER)
        self.dropped = 0
        self.rebuilds = 0

    async def add(self, group: OpcuaGroupConfig, nodes: list[Resolved]) -> None:
        """Create a subscription with one monitored item per node of ``group``."""
        interval = group.publishing_interval or self.config.interval
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=interval * 1000,
            RequestedLifetimeCount=self.config.keepalive_count * _LIFETIME_KEEPALIVES,
            RequestedMaxKeepAliveCount=self.config.keepalive_count,
            MaxNotificationsPerPublish=0,  # no limit: one publish carries a whole scan
            PublishingEnabled=True,
            Priority=0,
        )
        size = max(BUFFER, len(nodes) * group.queue_size * 4)
        sub = await self.client.create_subscription(params, None, queue_maxsize=size)
        signals = await self._monitor(sub, group, nodes)
        pump = asyncio.create_task(self._pump(sub, signals), name=f"{self.config.name}-opcua-sub")
        self.entries.append(_Entry(group, nodes, sub, signals, pump))

    async def _monitor(
        self, sub: Subscription, group: OpcuaGroupConfig, nodes: list[Resolved]
    ) -> dict[int, str]:
        found = [r for r in nodes if r.node is not None]
        requests = [
            _item_request(r.node, handle, group, self.config.interval)
            for handle, r in enumerate(found, 1)
        ]
        results = await sub.create_monitored_items(requests) if requests else []
        signals = {}
        for handle, (resolved, result) in enumerate(zip(found, results, strict=True), 1):
            if isinstance(result, ua.StatusCode):
                log.error("%s: cannot monitor (%s)", resolved.signal, result.name)
                self._bad(resolved.signal, result.value)
            else:
                signals[handle] = resolved.signal
        for resolved in nodes:
            if resolved.node is None:
                self._bad(resolved.signal, ua.StatusCodes.BadNodeIdUnknown)
        return signals

    def _bad(self, signal: str, status: int) -> None:
        self._put(signal, ua.DataValue(StatusCode=ua.StatusCode(status)))

    def _put(self, signal: str, value: Any) -> None:
        if len(self.buffer) == BUFFER:
            if not self.dropped:
                log.error("%s: notification buffer full; dropping the oldest", self.config.name)
            self.dropped += 1
        self.buffer.append((signal, value))

    async def _pump(self, sub: Subscription, signals: dict[int, str]) -> None:
        async for event in sub:
            if isinstance(event, DataChangeEvent):
                item = event.data.monitored_item
                signal = signals.get(item.ClientHandle)
                if signal is not None:
                    self._put(signal, item.Value)
            elif isinstance(event, StatusChangeEvent):
                self._closed(sub, event.notification.Status)

    def _closed(self, sub: Subscription, status: ua.StatusCode) -> None:
        for entry in self.entries:
            if entry.sub is sub:
                entry.closed = status.name
                log.warning("%s: server ended a subscription (%s)", self.config.name, status.name)

    def drain(self) -> list[tuple[str, Any]]:
        """``(signal, DataValue)`` notifications since the last call, oldest first."""
        items = list(self.buffer)
        self.buffer.clear()
        if self.dropped:
            log.warning("%s: %d notification(s) were dropped", self.config.name, self.dropped)
            self.dropped = 0
        return items

    async def watch(self) -> None:
        """Rebuild every subscription that has gone silent or was ended by the server."""
        now = time.monotonic()
        for entry in list(self.entries):
            reason = entry.closed or self._silence(entry, now)
            if reason:
                await self._rebuild(entry, reason)

    def _silence(self, entry: _Entry, now: float) -> str:
        last = entry.sub.last_publish_at or entry.created
        quiet = now - last
        limit = self.silence_timeout(entry.group)
        return f"no publish response for {quiet:.1f} s" if quiet > limit else ""

    def silence_timeout(self, group: OpcuaGroupConfig) -> float:
        """How long a subscription may stay quiet before it counts as dead."""
        if self.config.silence_timeout is not None:
            return self.config.silence_timeout
        interval = group.publishing_interval or self.config.interval
        return max(3 * interval * self.config.keepalive_count, 2 * self.config.timeout)

    async def _rebuild(self, entry: _Entry, reason: str) -> None:
        log.warning(
            "%s: subscription silent or closed (%s); rebuilding it", self.config.name, reason
        )
        self.rebuilds += 1
        self.entries.remove(entry)
        await _stop(entry)
        await self.add(entry.group, entry.nodes)

    async def close(self) -> None:
        """Stop the pumps (the session's close deletes the subscriptions on the server)."""
        pumps = [entry.pump for entry in self.entries]
        self.entries.clear()
        for pump in pumps:
            pump.cancel()
        # Waiting for the cancelled pumps: none is left pending when the loop ends.
        await asyncio.gather(*pumps, return_exceptions=True)


async def _stop(entry: _Entry) -> None:
    entry.pump.cancel()
    try:
        await asyncio.wait_for(entry.sub.delete(), timeout=2.0)
    except (ua.UaError, TimeoutError, ConnectionError, OSError):
        # A dead subscription often cannot be deleted; its lifetime ends it on the server.
        log.debug("deleting a dead subscription failed", exc_info=True)


def _item_request(node: Any, handle: int, group: OpcuaGroupConfig, default: float) -> Any:
    params = ua.MonitoringParameters()
    params.ClientHandle = handle
    interval = group.sampling_interval or group.publishing_interval or default
    params.SamplingInterval = interval * 1000
    params.QueueSize = group.queue_size
    params.DiscardOldest = True
    if group.deadband is not None:
        kind = (
            ua.DeadbandType.Absolute
            if group.deadband.type == "absolute"
            else ua.DeadbandType.Percent
        )
        params.Filter = ua.DataChangeFilter(
            Trigger=ua.DataChangeTrigger.StatusValue,
            DeadbandType=int(kind),
            DeadbandValue=group.deadband.value,
        )
    request = ua.MonitoredItemCreateRequest()
    request.ItemToMonitor = ua.ReadValueId(NodeId=node, AttributeId=ua.AttributeIds.Value)
    request.MonitoringMode = ua.MonitoringMode.Reporting
    request.RequestedParameters = params
    return request
