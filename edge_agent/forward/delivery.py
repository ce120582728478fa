"""The delivery loop of one sink: take a batch, send it, then ack, keep or reject it.

One :func:`deliver_forever` task per sink. It connects (``async with sink``), drains
the outbox while the link holds, sleeps on ``wake`` when there is nothing to send,
and on a :class:`~edge_agent.errors.DeliveryError` leaves the connection, backs off
exponentially with jitter up to a cap, and connects again. The link's state is
logged once per transition: "unavailable" once (WARNING; "refuses our messages" at
ERROR for a :class:`~edge_agent.errors.RefusedError`, which waits for someone to change
upstream), "delivering again after N s" once (INFO).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self

from edge_agent.backoff import Backoff
from edge_agent.cancel import cancel_was_swallowed
from edge_agent.errors import DeliveryError, RefusedError, RejectedError
from edge_agent.forward.config import SinkSettings
from edge_agent.forward.outbox import Outbox
from edge_agent.forward.outbox_rows import Record

log = logging.getLogger(__name__)

Run = Callable[..., Awaitable[Any]]


class Sink(Protocol):
    """What :func:`deliver_forever` needs from a sink (MqttSink, HttpSink, JsonlSink)."""

    @property
    def config(self) -> SinkSettings:
        """The sink's config."""
        ...

    async def __aenter__(self) -> Self:
        """Connect; raises DeliveryError when upstream is unreachable."""
        ...

    async def __aexit__(self, *exc_info: object) -> None:
        """Disconnect."""
        ...

    async def send(self, batch: Sequence[Record]) -> None:
        """Deliver ``batch``; DeliveryError keeps it, RejectedError drops it."""
        ...


@dataclass
class LinkState:
    """A sink's link as the site view shows it (assigned on the event loop only).

    Attributes:
        connected: the last send went through and no error came since.
        last_error: why the link last failed ("" if never).
        last_error_at: when (Unix seconds).
        delivered_at: when the last batch was settled.
    """

    connected: bool = False
    last_error: str = ""
    last_error_at: float | None = None
    delivered_at: float | None = None


class _Link:
    """Logs the link's state once per transition."""

    def __init__(self, name: str, state: LinkState | None = None) -> None:
        self.name = name
        self.down_since: float | None = None
        self.state = state or LinkState()

    def down(self, exc: BaseException) -> None:
        self.state.connected = False
        self.state.last_error = str(exc) or type(exc).__name__
        self.state.last_error_at = time.time()
        if self.down_since is None:
            self.down_since = time.monotonic()
            if isinstance(exc, RefusedError):  # waits for an operator, not for time
                log.error("%s: upstream refuses our messages, keeping the backlog: %s",
                          self.name, exc)  # fmt: skip
            else:
                log.warning("%s: upstream unavailable, keeping the backlog: %s", self.name, exc)

    def up(self) -> None:
        self.state.connected = True
        self.state.delivered_at = time.time()
        if self.down_since is not None:
            lasted = time.monotonic() - self.down_since
            log.info("%s: delivering again after %.0f s", self.name, lasted)
            self.down_since = None


async def deliver_forever(
    outbox: Outbox,
    sink: Sink,
    name: str,
    run: Run,
    wake: asyncio.Event,
    state: LinkState | None = None,
) -> None:
    """Deliver ``name``'s rows of ``outbox`` through ``sink`` until cancelled.

    Args:
        outbox: the outbox.
        sink: the sink (an async context manager with ``send``).
        name: the sink's name in the outbox.
        run: ``await run(fn, *args)`` runs a blocking outbox call on the DB thread.
        wake: set it after a put; one Event per sink (this loop clears it).
        state: where the link's state is kept for the site view (optional).
    """
    backoff = Backoff(sink.config.backoff, sink.config.backoff_max)
    link = _Link(name, state)
    while True:
        try:
            async with sink:
                # A new connection starts again from the oldest unsettled row.
                await run(outbox.keep, name, [])
                link.state.connected = True
                await _drain(outbox, sink, name, run, wake, link, backoff)
        except DeliveryError as exc:
            link.down(exc)
        except Exception as exc:  # a bug must not end delivery: log, back off, retry
            if link.down_since is None:
                log.exception("%s: unexpected error in delivery", name)
            link.down(exc)
        if cancel_was_swallowed():  # e.g. by a failing connect: it would back off forever
            raise asyncio.CancelledError
        await asyncio.sleep(backoff.next_delay())


async def _drain(
    outbox: Outbox, sink: Sink, name: str, run: Run, wake: asyncio.Event, link: _Link,
    backoff: Backoff,
) -> None:  # fmt: skip
    """Send batches while the link holds; settle them (ack/keep/reject) in order.

    A sink that keeps order across overlapping sends (``pipelined``: MQTT on one
    connection) gets the next batch while the previous one awaits its PUBACKs.
    """
    depth = 2 if getattr(sink, "pipelined", False) else 1
    flight: deque[tuple[list[Record], asyncio.Future[None]]] = deque()
    try:
        while True:
            # A connect or send that completed may have eaten the stop (aiomqtt's wait_for).
            if cancel_was_swallowed():
                raise asyncio.CancelledError
            wake.clear()
            if len(flight) < depth:
                batch: list[Record] = await run(outbox.take, name, sink.config.batch_size)
                if batch:
                    flight.append((batch, asyncio.ensure_future(sink.send(batch))))
                    if len(flight) < depth:
                        continue
            if flight:
                await _settle(outbox, name, run, *flight.popleft(), link, backoff)
            else:
                await _idle(sink, wake)
    finally:
        for _, task in flight:  # abandoned after a failure: keep() returned their rows
            task.cancel()
            task.add_done_callback(_retrieve)


async def _idle(sink: Sink, wake: asyncio.Event) -> None:
    """Wait for new rows, or for the end of a session that can end by itself.

    A sink with ``session_lost()`` (Sparkplug: a lost link, its Primary Host offline)
    must reconnect at once, even with nothing to send: its DeliveryError ends the wait.
    """
    lost: asyncio.Future[None] | None = getattr(sink, "session_lost", lambda: None)()
    if lost is None:
        await wake.wait()
        return
    waiter = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait((waiter, lost), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if lost.done():
        lost.result()  # raises the session's DeliveryError


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # mark it seen; the failure that matters was already handled


async def _settle(
    outbox: Outbox, name: str, run: Run, batch: list[Record], task: asyncio.Future[None],
    link: _Link, backoff: Backoff,
) -> None:  # fmt: skip
    try:
        await task
    except RejectedError as exc:
        await run(outbox.reject, name, batch)
        log.error("%s: upstream rejected %d messages, dropped: %s", name, len(batch), exc)
        return
    except DeliveryError:
        await run(outbox.keep, name, batch)
        raise
    await run(outbox.ack, name, batch)
    link.up()
    backoff.reset()
