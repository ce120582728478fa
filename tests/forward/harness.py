"""Helpers of the forward tests: a DB thread, a delivery task, a subscriber that collects."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from edge_agent.forward.delivery import LinkState, Sink, deliver_forever
from edge_agent.forward.outbox import Outbox


@dataclass
class Received:
    """Messages a subscriber got: (topic, payload dict, retain)."""

    messages: list[tuple[str, dict[str, Any], bool]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, kind: str) -> list[dict[str, Any]]:
        """Payloads of one ``type``."""
        return [p for _, p, _ in self.messages if p.get("type") == kind]

    async def until(self, check: Callable[[Received], bool], within: float = 20) -> None:
        """Wait until ``check(self)`` holds (TimeoutError otherwise)."""
        async with asyncio.timeout(within):
            while not check(self):
                self.changed.clear()
                await self.changed.wait()


async def _subscribe_forever(
    port: int, topic: str, got: Received, client_id: str, tls: Any
) -> None:
    context = None
    if tls is not None:
        context = ssl.create_default_context(cafile=tls.ca)
        context.load_cert_chain(tls.client_cert, tls.client_key)
    while True:
        try:
            async with aiomqtt.Client(
                "localhost",
                port,
                identifier=client_id,
                clean_session=False,
                tls_context=context,
            ) as client:
                await client.subscribe(topic, qos=1)
                got.subscribed.set()
                async for message in client.messages:
                    payload = json.loads(bytes(message.payload))
                    got.messages.append((str(message.topic), payload, message.retain))
                    got.changed.set()
        except aiomqtt.MqttError:
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def subscriber(
    port: int, topic: str = "#", client_id: str = "test-sub", tls: Any = None
) -> AsyncIterator[Received]:
    """Collect every message on ``topic``.

    It reconnects with its persistent session when the broker returns.
    """
    got = Received()
    task = asyncio.create_task(_subscribe_forever(port, topic, got, client_id, tls))
    try:
        async with asyncio.timeout(10):
            await got.subscribed.wait()
        yield got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def delivering(
    outbox: Outbox, sink: Sink, name: str, state: LinkState | None = None
) -> AsyncIterator[asyncio.Event]:
    """Run deliver_forever for ``sink`` with a single DB thread; yields its wake event.

    ``state``, if given, gets the link's state as the site view would see it.
    """
    executor = ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await loop.run_in_executor(executor, fn, *args)

    wake = asyncio.Event()
    task = asyncio.create_task(deliver_forever(outbox, sink, name, run, wake, state))
    try:
        yield wake
    finally:
        # One cancel ends it: deliver_forever notices a cancel that aiomqtt's wait_for
        # swallowed (edge_agent/cancel.py), as the agent's stop relies on.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        executor.shutdown()


async def drained(outbox: Outbox, sink: str, within: float = 20) -> None:
    """Wait until ``sink`` has no rows left (its last ack may trail the last PUBACK)."""
    for _ in range(int(within / 0.02)):
        if outbox.status().rows(sink) == 0:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{sink} still has {outbox.status().rows(sink)} rows")
