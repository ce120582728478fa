"""Connect an aiomqtt client so that a stop cannot cut the connect in half.

aiomqtt 2.5.1's ``Client.__aenter__`` is not safe to cancel (the SIGHUP that restarts
a sink, or SIGTERM, cancels its delivery task wherever it is):

* Cancelled while it waits for the CONNACK, ``asyncio.wait_for`` cancels the client's
  ``_connected`` future, but the socket stays open and its reader registered with the
  loop. When the broker refuses (a wrong password) paho closes the socket and calls
  aiomqtt's ``_on_disconnect``, which calls ``_connected.exception()``: on a cancelled
  future that raises ``CancelledError`` out of the loop's reader callback, and asyncio
  prints "Exception in callback None()", "handle: <Handle cancelled>" and a traceback.
  A broker that accepts instead leaves a connected client that nobody closes, holding
  the sink's client id.
* Cancelled while paho connects in aiomqtt's executor thread, the thread connects
  anyway: the socket opens after the caller left, the same two ways.

So :func:`connect` runs ``__aenter__`` in a task of its own that the caller's cancel
does not reach. A caller cancelled meanwhile first waits for that task to end (at once
for a broker that answers; at most paho's 5 s connect timeout plus the client's
``timeout`` for one that does not), disconnects a client that did connect, and then
raises ``CancelledError``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiomqtt

log = logging.getLogger(__name__)


async def connect(client: aiomqtt.Client) -> None:
    """``await client.__aenter__()``, which a cancel of the caller does not interrupt.

    Raises:
        aiomqtt.MqttError: the connect failed (the caller was not cancelled).
        asyncio.CancelledError: the caller was cancelled; the client is closed again.
    """
    entering = asyncio.ensure_future(client.__aenter__())
    try:
        await asyncio.shield(entering)
    except asyncio.CancelledError:
        await _close_after(entering, client)
        raise


async def _close_after(entering: asyncio.Task[aiomqtt.Client], client: aiomqtt.Client) -> None:
    """Let the connect end, then leave the connection it opened, if it opened one."""
    import aiomqtt

    while not entering.done():
        try:  # wait() does not cancel what it waits for
            await asyncio.wait((entering,))
        except asyncio.CancelledError:
            continue  # a second stop: the connect must still end first (it is bounded)
    if entering.cancelled() or entering.exception() is not None:
        return  # refused or timed out: aiomqtt has reset the client itself
    try:
        await client.__aexit__(None, None, None)
    except aiomqtt.MqttError as exc:
        log.debug("disconnect after a stop during the connect: %s", exc)
    except asyncio.CancelledError:
        # Cancelled once more: the DISCONNECT is sent; paho closes the socket when the
        # broker does, and ``_on_disconnect`` returns early on a done ``_disconnected``.
        pass
