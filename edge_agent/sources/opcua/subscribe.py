"""OPC UA subscriptions of a source: monitored items, an inbox, and a silence watch.

Each subscribed group is one OPC UA subscription. A small task per
subscription moves its notifications into the source's ``Inbox``, which
``read()`` drains. The inbox belongs to the source, not to the session: when a
session is torn down, the pumps are stopped and what asyncua had received but
not yet handed over is moved into the inbox first (``close``), so the next
``read()`` returns it whatever happens to the session.

A subscription that stops answering (no data and no keep-alive for
``silence_timeout``), or that the server reports ended, is deleted and built
again on the same session: the "connected but receiving nothing" failure. A
node that cannot be monitored (unknown, deleted on the server) reads BAD and is
tried again on the same subscription, backing off like a reconnect. A deadband
the server refuses for a node (Boolean or text nodes) is dropped for that node
only, and said once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from asyncua import ua as _ua
from asyncua.client.client import Client
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription

from edge_agent.backoff import Backoff
from edge_agent.sources.opcua.counters import OpcuaCounts
from edge_agent.sources.opcua.nodes import (
    OpcuaGroupConfig,
    Resolved,
    publishing_of,
    queue_of,
    sampling_of,
)
from edge_agent.sources.opcua.problems import is_unreadable

if TYPE_CHECKING:
    from edge_agent.sources.opcua.config import OpcuaSourceConfig

log = logging.getLogger(__name__)
# asyncua's generated ua types (Int32/Boolean classes, implicit re-exports) do not
# type-check under mypy --strict; the namespace is used as dynamic on purpose.
ua: Any = _ua

BUFFER = 200_000  # notifications kept between two reads; beyond it the oldest go
_LIFETIME_KEEPALIVES = 6  # the spec asks for a lifetime of at least 3 keep-alive periods
# A publish response (data or keep-alive) comes at least once per keep-alive period; one
# this much later counts as a missed keep-alive (the half period absorbs loop jitter).
_LATE_KEEPALIVES = 1.5
# What servers answer for a data-change filter on a node it does not fit (Part 4, 7.22.2).
FILTER_REFUSED = frozenset(
    {
        "BadFilterNotAllowed",
        "BadMonitoredItemFilterUnsupported",
        "BadMonitoredItemFilterInvalid",
        "BadDeadbandFilterInvalid",
    }
)

Resolver = Callable[[list[str]], Awaitable[list[Resolved]]]


@dataclass
class Inbox:
    """Notifications received and not yet handed over; outlives sessions.

    Attributes:
        name: the source, for log lines.
        items: ``(signal, DataValue)``, oldest first.
        taken: events taken from asyncua since start (data changes and status changes).
        received: data-change notifications put here since start.
        made: BAD values made here (nodes that could not be monitored) since start.
        dropped: notifications dropped since the last drain (the buffer was full).
        lost: notifications dropped since start.
    """

    name: str
    items: deque[tuple[str, Any]] = field(default_factory=lambda: deque(maxlen=BUFFER))
    taken: int = 0
    received: int = 0
    made: int = 0
    dropped: int = 0
    lost: int = 0

    def put(self, signal: str, value: Any, *, received: bool = True) -> None:
        """Keep one notification (``received=False``: a BAD value made here)."""
        if len(self.items) == BUFFER:
            if not self.dropped:
                log.error("%s: notification buffer full; dropping the oldest", self.name)
            self.dropped += 1
            self.lost += 1
        self.received += received
        self.made += not received
        self.items.append((signal, value))

    def drain(self) -> list[tuple[str, Any]]:
        """Everything kept since the last call, oldest first."""
        items = list(self.items)
        self.items.clear()
        if self.dropped:
            log.warning("%s: %d notification(s) were dropped", self.name, self.dropped)
            self.dropped = 0
        return items


@dataclass
class _Entry:
    """One live subscription, its items, and what it needs to be built again."""

    group: OpcuaGroupConfig
    nodes: dict[str, Resolved]
    sub: Subscription
    backoff: Backoff
    signals: dict[int, str] = field(default_factory=dict)  # client handle -> signal
    items: dict[str, int] = field(default_factory=dict)  # signal -> server's item id
    missing: set[str] = field(default_factory=set)  # signals without a live item
    dead: list[int] = field(default_factory=list)  # item ids to delete on the server
    retry_at: float = 0.0
    pump: asyncio.Task[None] | None = None
    created: float = field(default_factory=time.monotonic)
    closed: str = ""  # a status-change reason from the server, when it ended the subscription
    late: bool = False  # a keep-alive was missed and no publish response came since


class Subscriptions:
    """The subscriptions of one session; their notifications go to the source's inbox."""

    def __init__(
        self,
        client: Client,
        config: OpcuaSourceConfig,
        inbox: Inbox,
        resolve: Resolver,
        unfiltered: set[str],
        counts: OpcuaCounts | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.inbox = inbox
        self.resolve = resolve
        self.unfiltered = unfiltered  # signals whose deadband the server refused
        self.entries: list[_Entry] = []
        self.counts = counts if counts is not None else OpcuaCounts()  # the source's, kept
        self._handle = 0

    async def add(self, group: OpcuaGroupConfig, nodes: list[Resolved]) -> None:
        """Create a subscription with one monitored item per node of ``group``."""
        interval = publishing_of(group, self.config.interval)
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=interval * 1000,
            RequestedLifetimeCount=self.config.keepalive_count * _LIFETIME_KEEPALIVES,
            RequestedMaxKeepAliveCount=self.config.keepalive_count,
            MaxNotificationsPerPublish=0,  # no limit: one publish carries a whole scan
            PublishingEnabled=True,
            Priority=0,
        )
        size = max(BUFFER, len(nodes) * queue_of(group, self.config.interval) * 4)
        sub = await self.client.create_subscription(params, None, queue_maxsize=size)
        backoff = Backoff(self.config.backoff, self.config.backoff_max)
        entry = _Entry(group, {r.signal: r for r in nodes}, sub, backoff)
        self.entries.append(entry)
        entry.pump = asyncio.create_task(self._pump(entry), name=f"{self.config.name}-opcua-sub")
        await self._monitor(entry, nodes)

    async def _monitor(self, entry: _Entry, nodes: list[Resolved]) -> None:
        unknown = ua.StatusCodes.BadNodeIdUnknown
        for resolved in nodes:
            if resolved.node is None:
                self._bad(entry, resolved.signal, resolved.status or unknown)
        found = [r for r in nodes if r.node is not None]
        refused = await self._create(entry, found)
        if refused:
            for resolved in refused:
                self._refused_filter(resolved)
            await self._create(entry, refused)
        self._schedule(entry)

    async def _create(self, entry: _Entry, nodes: list[Resolved]) -> list[Resolved]:
        """Monitored items for ``nodes``; returns those refused only for their deadband."""
        handles = [self._next_handle(entry, r.signal) for r in nodes]
        requests = [self._request(entry.group, r, h) for r, h in zip(nodes, handles, strict=True)]
        # Item ids, or a StatusCode for each item refused.
        results: list[Any] = await entry.sub.create_monitored_items(requests) if requests else []
        refused = []
        for resolved, handle, result in zip(nodes, handles, results, strict=True):
            signal = resolved.signal
            if not isinstance(result, ua.StatusCode):
                entry.items[signal] = result
                entry.missing.discard(signal)
                continue
            del entry.signals[handle]
            if result.name in FILTER_REFUSED and self._filtered(entry.group, signal):
                refused.append(resolved)
            else:
                self._bad(entry, signal, result.value)
        return refused

    def _next_handle(self, entry: _Entry, signal: str) -> int:
        # Unique per session: a retried item never gets a handle an old one had.
        self._handle += 1
        entry.signals[self._handle] = signal
        return self._handle

    def _filtered(self, group: OpcuaGroupConfig, signal: str) -> bool:
        return group.deadband is not None and signal not in self.unfiltered

    def _request(self, group: OpcuaGroupConfig, resolved: Resolved, handle: int) -> Any:
        filtered = self._filtered(group, resolved.signal)
        return _item_request(resolved.node, handle, group, self.config.interval, filtered)

    def _refused_filter(self, resolved: Resolved) -> None:
        # Said once per source lifetime: later sessions ask without the filter directly.
        self.unfiltered.add(resolved.signal)
        log.warning(
            "%s: server refused the deadband for node %s (not a numeric node?); "
            "it is subscribed without one",
            resolved.signal,
            resolved.label,
        )

    def _bad(self, entry: _Entry, signal: str, status: int) -> None:
        entry.missing.add(signal)
        self.inbox.put(signal, ua.DataValue(StatusCode=ua.StatusCode(status)), received=False)

    def _schedule(self, entry: _Entry) -> None:
        if not entry.missing:
            entry.backoff.reset()
        elif not entry.retry_at:
            entry.retry_at = time.monotonic() + entry.backoff.next_delay()

    async def _pump(self, entry: _Entry) -> None:
        async for event in entry.sub:
            self._take(entry, event)

    def _take(self, entry: _Entry, event: Any) -> None:
        self.inbox.taken += 1
        if isinstance(event, DataChangeEvent):
            item = event.data.monitored_item
            signal = entry.signals.get(item.ClientHandle)
            if signal is not None:
                self.inbox.put(signal, item.Value)
                self._check_gone(entry, item.ClientHandle, item.Value)
        elif isinstance(event, StatusChangeEvent):
            # Not logged here: asyncua also sends BadShutdown itself when *it* found the
            # session lost, and then the poll loop says what happened, once.
            entry.closed = event.notification.Status.name

    def _check_gone(self, entry: _Entry, handle: int, value: Any) -> None:
        status = value.StatusCode.value if value is not None and value.StatusCode else 0
        if not is_unreadable(status):
            return
        # The node went away (deleted on the server): its item is dead; try it again later.
        signal = entry.signals.pop(handle)
        entry.missing.add(signal)
        item = entry.items.pop(signal, None)
        if item is not None:
            entry.dead.append(item)
        self._schedule(entry)

    async def watch(self) -> None:
        """Rebuild silent or ended subscriptions; retry nodes that could not be monitored."""
        now = time.monotonic()
        for entry in list(self.entries):
            ended = self._ended(entry)
            reason = ended or self._silence(entry, now)
            if reason:
                self._count_rebuild(entry, bool(ended))
                await self._rebuild(entry, reason)
                continue
            self._keepalive(entry, now)
            if entry.missing and now >= entry.retry_at:
                await self._retry(entry)

    def _count_rebuild(self, entry: _Entry, ended: bool) -> None:
        if ended:
            self.counts.ended += 1
            return
        self.counts.silent += 1
        if not entry.late:  # a silence shorter than a late keep-alive is a miss too
            self.counts.keepalive_misses += 1

    def _keepalive(self, entry: _Entry, now: float) -> None:
        """Count one missed keep-alive per gap in the publish responses."""
        period = publishing_of(entry.group, self.config.interval) * self.config.keepalive_count
        late = now - (entry.sub.last_publish_at or entry.created) > _LATE_KEEPALIVES * period
        if late and not entry.late:
            self.counts.keepalive_misses += 1
        entry.late = late

    def _ended(self, entry: _Entry) -> str:
        return f"server ended the subscription ({entry.closed})" if entry.closed else ""

    def _silence(self, entry: _Entry, now: float) -> str:
        last = entry.sub.last_publish_at or entry.created
        quiet = now - last
        limit = self.silence_timeout(entry.group)
        return f"no publish response for {quiet:.1f} s" if quiet > limit else ""

    def silence_timeout(self, group: OpcuaGroupConfig) -> float:
        """How long a subscription may stay quiet before it counts as dead."""
        if self.config.silence_timeout is not None:
            return self.config.silence_timeout
        interval = publishing_of(group, self.config.interval)
        return max(3 * interval * self.config.keepalive_count, 2 * self.config.timeout)

    async def _retry(self, entry: _Entry) -> None:
        entry.retry_at = 0.0
        if entry.dead:
            dead, entry.dead = entry.dead, []
            with contextlib.suppress(ua.UaError, TimeoutError, ConnectionError, OSError):
                await entry.sub.unsubscribe(dead)  # the server may have removed them already
        nodes = await self.resolve(sorted(entry.missing))
        entry.nodes.update((r.signal, r) for r in nodes)
        await self._monitor(entry, nodes)

    async def _rebuild(self, entry: _Entry, reason: str) -> None:
        log.warning("%s: %s; rebuilding it", self.config.name, reason)
        self.entries.remove(entry)
        await self._hand_over(entry)
        await _delete(entry)
        await self.add(entry.group, list(entry.nodes.values()))

    async def _hand_over(self, entry: _Entry) -> None:
        """Stop the pump and move what asyncua received but the pump had not taken."""
        if entry.pump is not None:
            entry.pump.cancel()
            await asyncio.gather(entry.pump, return_exceptions=True)
        with contextlib.suppress(StopAsyncIteration):
            while (event := await entry.sub.next_event(timeout=0.001)) is not None:
                self._take(entry, event)

    async def close(self) -> None:
        """Hand everything received over to the inbox and stop the pumps.

        The session's close deletes the subscriptions on the server.
        """
        entries, self.entries = self.entries, []
        for entry in entries:
            await self._hand_over(entry)


async def _delete(entry: _Entry) -> None:
    try:
        async with asyncio.timeout(2.0):  # not wait_for: on 3.11 it can eat a stop
            await entry.sub.delete()
    except (ua.UaError, TimeoutError, ConnectionError, OSError):
        # A dead subscription often cannot be deleted; its lifetime ends it on the server.
        log.debug("deleting a dead subscription failed", exc_info=True)


def _item_request(
    node: Any, handle: int, group: OpcuaGroupConfig, default: float, filtered: bool
) -> Any:
    params = ua.MonitoringParameters()
    params.ClientHandle = handle
    params.SamplingInterval = sampling_of(group, default) * 1000
    params.QueueSize = queue_of(group, default)
    params.DiscardOldest = True
    if filtered and group.deadband is not None:
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
