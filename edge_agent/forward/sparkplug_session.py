"""One Sparkplug MQTT session: the NDEATH will, commands, the Primary Host's STATE, seq.

A session is one MQTT connection (clean session, as the specification requires of
every Sparkplug client) whose CONNECT carries the NDEATH as its Will (QoS 1, not
retained, the session's bdSeq and no seq). It subscribes to its NCMD topic (QoS 1) and,
when a Primary Host is configured, to ``spBv1.0/STATE/<host>``; a reader task hands
commands to the sink and watches STATE. ``seq`` runs 0..255 across every message after
NBIRTH (NBIRTH itself is 0). The session ends (``lost`` fails with a DeliveryError)
when the link drops or the Primary Host goes offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.errors import DeliveryError
from edge_agent.forward.brokers import Broker
from edge_agent.forward.mqtt import tls_context
from edge_agent.forward.mqtt_connect import connect
from edge_agent.forward.sparkplug_config import SparkplugSinkConfig
from edge_agent.forward.sparkplug_payload import INT64, MetricValue, encode
from edge_agent.logs import RateLimitedLog

if TYPE_CHECKING:
    import aiomqtt

log = logging.getLogger(__name__)

NAMESPACE = "spBv1.0"


class BdSeqFile:
    """bdSeq kept in a small JSON file, so it increments across restarts too."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def next(self) -> int:
        """The number for the next CONNECT, stored before it is used (0 the first time)."""
        try:
            last = int(json.loads(self.path.read_text())["bd_seq"])
            value = (last + 1) % 256
        except FileNotFoundError:
            value = 0
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s unreadable (%s): bdSeq starts again at 0", self.path, exc)
            value = 0
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"bd_seq": value}) + "\n")
            tmp.replace(self.path)
        except OSError as exc:
            raise DeliveryError(f"cannot store bdSeq in {self.path}: {exc}") from exc
        return value


@dataclass
class HostWatch:
    """The Primary Host Application's state as its STATE messages tell it.

    Kept across sessions, so a stale STATE (an older timestamp, e.g. a will delivered
    after the host's next birth) is recognised and ignored.
    """

    host: str
    last_ts: int | None = None
    online_ts: int | None = None
    online: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def update(self, payload: bytes) -> bool | None:
        """Apply a STATE payload; returns the new state, or None when it is ignored."""
        try:
            data = json.loads(payload)
            online, ts = data["online"], int(data["timestamp"])
        except (ValueError, KeyError, TypeError):
            log.warning("primary host %s: unreadable STATE ignored: %r", self.host, payload[:80])
            return None
        if not isinstance(online, bool):
            return None
        floor = self.last_ts if online else self.online_ts
        if floor is not None and ts < floor:
            log.info("primary host %s: stale STATE (%s, ts %d) ignored", self.host, online, ts)
            return None
        self.last_ts = ts
        if online:
            self.online_ts = ts
        self.online = online
        self.changed.set()
        return online


class Session:
    """One connection of the edge node to one broker.

    Args:
        config: the sink's config.
        node: the edge node id.
        bd_seq: this connection's birth/death sequence number.
        on_command: called with each NCMD's metrics ``{name: value}``, and with each
            DCMD's metrics and its device id.
        host: the Primary Host watch (None without one).
    """

    def __init__(self, config: SparkplugSinkConfig, node: str, bd_seq: int,
                 on_command: Callable[..., None],
                 host: HostWatch | None) -> None:  # fmt: skip
        self.config = config
        self.node = node
        self.bd_seq = bd_seq
        self.on_command = on_command
        self.host = host
        self.seq = 0
        self.lock = asyncio.Lock()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost.add_done_callback(_seen)
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._unreadable = RateLimitedLog(log, config.name)

    def topic(self, kind: str, device: str = "") -> str:
        """``spBv1.0/<group>/<kind>/<node>[/<device>]``."""
        base = f"{NAMESPACE}/{self.config.group_id}/{kind}/{self.node}"
        return f"{base}/{device}" if device else base

    def death(self) -> bytes:
        """The NDEATH payload: the bdSeq metric only, no seq."""
        return encode([MetricValue("bdSeq", INT64, self.bd_seq, time.time())], time.time(), None)

    # -- connect / close ---------------------------------------------------

    async def open(self, broker: Broker) -> None:
        """Connect with the NDEATH will, subscribe, start reading.

        Raises:
            DeliveryError: broker unreachable or refusing.
        """
        import aiomqtt

        client = self._make_client(broker)
        try:
            await connect(client)  # not client.__aenter__(): a stop must not cut it in half
        except aiomqtt.MqttError as exc:
            raise DeliveryError(f"{self.config.name}: cannot connect to {broker}: {exc}") from exc
        self._client = client
        try:
            await client.subscribe(self.topic("NCMD"), qos=1, timeout=self.config.timeout)
            if self.config.commands == "on":
                await client.subscribe(self.topic("DCMD", "+"), qos=1, timeout=self.config.timeout)
            if self.host is not None:
                state = f"{NAMESPACE}/STATE/{self.host.host}"
                await client.subscribe(state, qos=1, timeout=self.config.timeout)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            await self.close(death=False)
            raise DeliveryError(f"{self.config.name}: subscribe on {broker}: {exc}") from exc
        self._reader = asyncio.create_task(self._read_forever(client))

    def _make_client(self, broker: Broker) -> aiomqtt.Client:
        import aiomqtt

        cfg = self.config
        try:
            context = tls_context(cfg)
        except (OSError, ssl.SSLError) as exc:
            raise DeliveryError(f"{cfg.name}: cannot load TLS files: {exc}") from exc
        v5 = cfg.protocol == "5"
        from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY

        return aiomqtt.Client(
            broker.host,
            broker.port,
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None,
            identifier=cfg.client_id or f"edge-agent-{self.node}-{cfg.name}",
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=aiomqtt.Will(self.topic("NDEATH"), self.death(), qos=1, retain=False),
            clean_session=None if v5 else True,
            clean_start=True if v5 else MQTT_CLEAN_START_FIRST_ONLY,  # v5: expiry 0
            keepalive=max(1, int(cfg.keepalive)),
            timeout=cfg.timeout,
            tls_context=context,
            tls_insecure=cfg.tls == "no-verify" or None,
        )

    async def close(self, death: bool) -> None:
        """Leave: the NDEATH first when ``death`` (a clean disconnect sends no will)."""
        import aiomqtt

        client, self._client = self._client, None
        if self._reader is not None:
            self._reader.cancel()
            # gather, not suppress(CancelledError): a cancel of our own must go through.
            await asyncio.gather(self._reader, return_exceptions=True)
        if client is None:
            return
        if death:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await client.publish(self.topic("NDEATH"), self.death(), qos=1, timeout=2.0)
        try:
            await client.__aexit__(None, None, None)
        except aiomqtt.MqttError as exc:
            log.debug("%s: disconnect: %s", self.config.name, exc)
        self.end(DeliveryError(f"{self.config.name}: session closed"))

    def end(self, exc: DeliveryError) -> None:
        """Mark the session as over (the delivery loop then leaves and reconnects)."""
        if not self.lost.done():
            self.lost.set_exception(exc)

    # -- reading -----------------------------------------------------------

    async def _read_forever(self, client: aiomqtt.Client) -> None:
        import aiomqtt

        try:
            async for message in client.messages:
                self._dispatch(str(message.topic), bytes(message.payload or b""))
        except aiomqtt.MqttError as exc:
            self.end(DeliveryError(f"{self.config.name}: connection lost: {exc}"))

    def _dispatch(self, topic: str, payload: bytes) -> None:
        from edge_agent.forward.sparkplug_payload import decode_command

        is_node = topic == self.topic("NCMD")
        if is_node or topic.startswith(self.topic("DCMD") + "/"):
            metrics = decode_command(payload)
            if metrics is None:  # nothing to answer to: the journal is the one place to say it
                self._unreadable.log(logging.WARNING, "%s: unreadable command on %s ignored "
                                     "(%d bytes, not a Sparkplug B payload)",
                                     self.config.name, topic, len(payload))  # fmt: skip
            elif is_node:
                self.on_command(metrics)
            else:
                self.on_command(metrics, topic.rsplit("/", 1)[1])
        elif self.host is not None and topic == f"{NAMESPACE}/STATE/{self.host.host}":
            self._state(self.host, payload)

    def _state(self, host: HostWatch, payload: bytes) -> None:
        if host.update(payload) is False:
            self.end(DeliveryError(f"{self.config.name}: primary host {host.host} offline"))

    # -- publishing --------------------------------------------------------

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq = (self.seq + 1) % 256
        return seq

    async def publish(self, topic: str, metrics: list[MetricValue], birth: bool = False,
                      first: bool = False) -> None:  # fmt: skip
        """Publish one Sparkplug message at QoS 0 (births and data alike, as specified).

        The seq is taken and the message handed to the client in one step, so the
        order on the wire is the order of seq. ``first`` (NBIRTH) restarts seq at 0;
        ``birth`` (NBIRTH, DBIRTH) adds the datatypes.

        Raises:
            DeliveryError: the client refused it (the link is gone).
        """
        import aiomqtt

        client = self._client
        if client is None or self.lost.done():
            raise DeliveryError(f"{self.config.name}: not connected")
        if first:
            self.seq = 0
        payload = encode(metrics, time.time(), self._next_seq(), birth)
        try:
            await client.publish(topic, payload, qos=0)
        except aiomqtt.MqttError as exc:
            self.end(DeliveryError(f"{self.config.name}: publish failed: {exc}"))
            raise DeliveryError(f"{self.config.name}: publish failed: {exc}") from exc

    async def barrier(self) -> None:
        """Return once the broker has processed everything published before.

        Data goes at QoS 0 (the specification's rule), which has no acknowledgement. An
        UNSUBSCRIBE of a filter never subscribed is answered (UNSUBACK) only after the
        broker has read every packet before it on this connection, so its answer is
        the acknowledgement of the batch. It changes no state on the broker.

        Raises:
            DeliveryError: no answer within ``timeout`` or the link is gone.
        """
        import aiomqtt

        client = self._client
        if client is None or self.lost.done():
            raise DeliveryError(f"{self.config.name}: not connected")
        try:
            await client.unsubscribe(self.topic("NCMD") + "/$ack", timeout=self.config.timeout)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            self.end(DeliveryError(f"{self.config.name}: no acknowledgement: {exc}"))
            raise DeliveryError(f"{self.config.name}: no acknowledgement: {exc}") from exc


def _seen(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # the delivery loop reports it; no "never retrieved" warning
