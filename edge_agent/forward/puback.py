"""MQTT 5 PUBACKs that refuse a QoS 1 publish (reason code >= 0x80).

paho hands every PUBACK's reason code to ``on_publish(client, userdata, mid,
reason_code, properties)``, but aiomqtt 2.5's own callback ignores it: ``publish``
returns normally for "0x87 Not authorized" (a broker ACL) as for "0x00 Success". A
:class:`PubackWatch` wraps that callback on the paho client aiomqtt keeps in its
private ``_client`` attribute and notes each refusal in every :meth:`~PubackWatch.window`
open at the time. The sink opens one window around each batch; aiomqtt does not say
which message id a publish got, so a refusal is charged to every batch in flight: the
batch that held the refused message is always among them, and another one is merely
sent again (QoS 1 is at least once).

MQTT 3.1.1 has no reason code in its PUBACK: a broker that denies a publish answers it
like any other (mosquitto does), so nothing can be seen there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

T = TypeVar("T")
OnPublish = Callable[[Any, Any, int, "ReasonCode", Any], None]


@dataclass(frozen=True)
class Refusal:
    """One negative PUBACK: its reason code and the topic of the refused message."""

    code: int
    reason: str
    topic: str

    def __str__(self) -> str:
        where = f" on topic {self.topic}" if self.topic else ""
        return f"0x{self.code:02X} {self.reason}{where}"


@dataclass(eq=False)
class Window:
    """The refusals that arrived while the window was open."""

    refusals: list[Refusal] = field(default_factory=list)
    _refused: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self, refusal: Refusal) -> None:
        """Add ``refusal`` and end :meth:`unless_refused`."""
        self.refusals.append(refusal)
        self._refused.set()

    async def unless_refused(self, work: Awaitable[T]) -> T | None:
        """Await ``work``, or cancel it and return None as soon as a refusal comes.

        A broker may close the connection right after a refusal (Debian's mosquitto
        2.0.11 does with ``max_queued_messages 0``): the rest of the batch would then
        wait out its whole timeout for nothing.
        """
        task = asyncio.ensure_future(work)
        refused = asyncio.ensure_future(self._refused.wait())
        try:
            await asyncio.wait((task, refused), return_when=asyncio.FIRST_COMPLETED)
        finally:
            refused.cancel()
            if not task.done():  # the caller was cancelled, or a refusal came first
                task.cancel()
                task.add_done_callback(_retrieve)
        return None if self.refusals else task.result()


class PubackWatch:
    """Notes the negative PUBACKs of one sink's client, whichever client is current.

    Args:
        name: the sink's name, for the log.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._open: list[Window] = []
        self._blind_logged = False

    def attach(self, client: object) -> bool:
        """Wrap the ``on_publish`` callback of ``client`` (an ``aiomqtt.Client``).

        Returns False, with one WARNING in the sink's life, when aiomqtt no longer
        keeps its paho client where this expects it: publishing goes on as before,
        blind to refusals.
        """
        paho = getattr(client, "_client", None)
        original = getattr(paho, "on_publish", None)
        if paho is None or not callable(original):
            if not self._blind_logged:
                self._blind_logged = True
                log.warning(
                    "%s: this aiomqtt keeps no paho client in '_client': a publish the"
                    " broker refuses (MQTT 5 PUBACK >= 0x80) will count as delivered",
                    self.name,
                )
            return False
        paho.on_publish = self._wrap(original)
        return True

    def _wrap(self, original: OnPublish) -> OnPublish:
        def on_publish(
            client: Any, userdata: Any, mid: int, reason_code: ReasonCode, properties: Any
        ) -> None:
            try:
                if getattr(reason_code, "is_failure", False):
                    topic = _topic_of(client, mid)
                    self._note(Refusal(int(reason_code.value), str(reason_code), topic))
            finally:  # aiomqtt's own callback ends the publish's wait, whatever happens here
                original(client, userdata, mid, reason_code, properties)

        return on_publish

    def _note(self, refusal: Refusal) -> None:
        for window in self._open:
            window.note(refusal)
        if not self._open:  # e.g. a command's reply: no outbox row depends on it
            log.debug("%s: broker refused a publish: %s", self.name, refusal)

    @contextlib.contextmanager
    def window(self) -> Iterator[Window]:
        """Collect the refusals that arrive until the block ends."""
        window = Window()
        self._open.append(window)
        try:
            yield window
        finally:
            self._open.remove(window)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # mark it seen: a cancelled gather may end with CancelledError set


def _topic_of(paho: Any, mid: int) -> str:
    """The topic of message ``mid``, still in paho's outgoing messages during the callback."""
    messages = getattr(paho, "_out_messages", None)
    message = messages.get(mid) if isinstance(messages, dict) else None
    topic = getattr(message, "topic", "")
    return topic if isinstance(topic, str) else ""
