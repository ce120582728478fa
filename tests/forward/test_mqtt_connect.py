"""A stop (SIGHUP restart, SIGTERM) that comes while the MQTT sink waits for its CONNACK.

aiomqtt 2.5.1's connect is not safe to cancel (see edge_agent.forward.mqtt_connect): a
refusal arriving after the cancel raised CancelledError out of a loop callback, which
asyncio printed with a traceback; an acceptance left a connection nobody closed. A proxy
between the sink and a real mosquitto holds the broker's CONNACK until the sink is
cancelled, so both cases happen every run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import CoroutineType
from typing import Any

import pytest

from edge_agent.forward.config import MqttSinkConfig
from edge_agent.forward.mqtt import MqttSink
from tests.forward.conftest import Mosquitto

WITHIN = 20.0
"""Seconds the test waits for something that must happen (aiomqtt's timeout is 10)."""


class HeldConnack:
    """A TCP proxy to the broker that holds the broker's first bytes until released."""

    def __init__(self, broker: int) -> None:
        self.broker = broker
        self.port = 0
        self.held = asyncio.Event()
        """The broker's answer (the CONNACK) has come and is held."""
        self.release = asyncio.Event()
        self.client_closed = asyncio.Event()
        """The sink closed its end of the connection."""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.broker)
        down = asyncio.create_task(self._down(up_reader, writer))
        try:
            while data := await reader.read(4096):
                up_writer.write(data)
        finally:
            self.client_closed.set()
            down.cancel()
            up_writer.close()
            writer.close()

    async def _down(self, up_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await up_reader.read(4096):
            if not self.release.is_set():
                self.held.set()
                await self.release.wait()
            writer.write(data)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[HeldConnack]:
        """Listen on a free loopback port (``self.port``) while the block runs."""
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield self


def _sink(port: int, password: str) -> MqttSink:
    config = MqttSinkConfig.model_validate(
        {"type": "mqtt", "name": "cloud", "host": "127.0.0.1", "port": port, "tls": "off",
         "username": "gateway", "password": password, "timeout": "10s"}
    )  # fmt: skip
    return MqttSink(config, gateway="gw1")


def _awaits_wait_for(coro: Any) -> bool:
    """Whether the coroutine's await chain passes through ``asyncio.wait_for``."""
    while isinstance(coro, CoroutineType):
        if coro.cr_code is asyncio.wait_for.__code__:
            return True
        coro = coro.cr_await
    return False


async def _connack_awaited() -> None:
    """Until aiomqtt waits for the CONNACK (past paho's connect in its executor thread)."""
    async with asyncio.timeout(WITHIN):
        while not any(_awaits_wait_for(t.get_coro()) for t in asyncio.all_tasks()):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def _stop_during_connack(proxy: HeldConnack, password: str) -> BaseException | None:
    """Connect the sink through ``proxy``, cancel it while its CONNACK is held, let it go."""
    entering = asyncio.create_task(_sink(proxy.port, password).__aenter__())
    async with asyncio.timeout(WITHIN):
        await proxy.held.wait()
    await _connack_awaited()
    entering.cancel()
    await asyncio.sleep(0)  # the cancel reaches aiomqtt's wait before the CONNACK does
    proxy.release.set()
    (result,) = await asyncio.gather(entering, return_exceptions=True)
    if isinstance(result, BaseException):
        return result
    await result.__aexit__(None, None, None)  # a connect that won the race: leave anyway
    return None


@pytest.mark.parametrize("password", ["wrong", "s3cret"])
async def test_a_stop_while_the_connack_is_on_its_way_closes_the_connection_quietly(
    auth_broker: Mosquitto, password: str
) -> None:
    """Refused: no "Exception in callback" traceback. Accepted: no connection left open."""
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        async with HeldConnack(auth_broker.port).running() as proxy:
            result = await _stop_during_connack(proxy, password)
            async with asyncio.timeout(WITHIN):  # without the fix: TimeoutError, still open
                await proxy.client_closed.wait()
            await asyncio.sleep(0.2)  # a callback still to come would be reported by now
    finally:
        loop.set_exception_handler(None)
    assert isinstance(result, asyncio.CancelledError), result
    assert reported == [], [context["message"] for context in reported]
