"""Commands arriving as MQTT JSON on the plain ``mqtt`` sink's connection.

The sink subscribes to its ``command_topic`` (QoS 1) and hands the connection to
:meth:`CommandInbox.serve`, which reads every message, runs each command in its own
task (a slow device does not hold back commands for another), and publishes exactly
one reply per message on ``reply_topic`` (QoS 1). The format is in
:mod:`edge_agent.commands.message`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from edge_agent.commands.message import BadCommand, bad_reply, encode_reply, parse_command

if TYPE_CHECKING:
    import aiomqtt

    from edge_agent.commands.executor import Executor

log = logging.getLogger(__name__)


class CommandInbox:
    """Reads commands from one MQTT connection and answers each.

    Args:
        executor: runs the commands.
        origin: the commands' origin (``mqtt:<sink>``).
        gateway: ``agent.id``, in each reply.
        reply_topic: where replies go.
    """

    def __init__(self, executor: Executor, origin: str, gateway: str, reply_topic: str) -> None:
        self.executor = executor
        self.origin = origin
        self.gateway = gateway
        self.reply_topic = reply_topic

    async def serve(self, client: aiomqtt.Client) -> None:
        """Answer commands until cancelled or the connection ends."""
        import aiomqtt

        tasks: set[asyncio.Task[None]] = set()
        try:
            async for message in client.messages:
                task = asyncio.create_task(self._answer(client, bytes(message.payload or b"")))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except aiomqtt.MqttError as exc:
            log.debug("%s: command reader ends: %s", self.origin, exc)
        finally:
            for task in tasks:
                task.cancel()  # the write itself is shielded: it ends and is audited

    async def _answer(self, client: Any, body: bytes) -> None:
        import aiomqtt

        try:
            command = parse_command(body, self.origin)
        except BadCommand as exc:
            reply = bad_reply(exc, self.origin, time.time())
            await self.executor.reject(reply)
        else:
            reply = await self.executor.execute(command)
        try:
            await client.publish(self.reply_topic, encode_reply(reply, self.gateway), qos=1)
        except aiomqtt.MqttError as exc:
            log.warning("%s: reply to command %s not sent (the audit event keeps it): %s",
                        self.origin, reply.id, exc)  # fmt: skip
