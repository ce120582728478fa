"""MQTT sink (aiomqtt): QoS 1, a row is acknowledged only after its PUBACK.

aiomqtt's ``await client.publish(..., qos=1)`` returns when paho's ``on_publish``
fires, which for QoS 1 is on PUBACK (paho ``_handle_pubackcomp``), so the delivery
loop acks the outbox rows only once the broker has taken responsibility for them.
A batch is published concurrently (up to ``max_inflight`` unacknowledged at once),
in outbox order on one connection, so order per asset is kept.

A persistent session (fixed client id, ``clean_session`` false / MQTT 5
``clean_start`` false with a session expiry) keeps the broker's state across
reconnects. On connect the sink publishes a retained ``online`` status; a retained
``offline`` last will covers a lost link, and a clean exit publishes ``offline``
itself (a will is not sent on a normal disconnect).

A broker may refuse a publish in an MQTT 5 PUBACK (reason code >= 0x80, e.g. 0x87 Not
authorized by an ACL). aiomqtt 2.5 returns from ``publish`` regardless, so the sink
watches paho's callback itself (:mod:`edge_agent.forward.puback`): a batch during which
a refusal came fails with a DeliveryError naming the code and topic, its rows stay in
the outbox and are sent again after the backoff, like a broker that is down. MQTT 3.1.1
cannot signal a refusal (mosquitto answers it with a plain PUBACK): there a denied
publish still counts as delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, Self

from edge_agent.errors import DeliveryError, RefusedError
from edge_agent.forward.brokers import Broker, BrokerWalk
from edge_agent.forward.config import MqttSinkConfig
from edge_agent.forward.encode import encode_status
from edge_agent.forward.mqtt_connect import connect
from edge_agent.forward.outbox_rows import Record
from edge_agent.forward.puback import PubackWatch

if TYPE_CHECKING:
    import aiomqtt

    from edge_agent.commands.executor import Executor

log = logging.getLogger(__name__)

_TOPIC_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_"})


def topic_for(template: str, gateway: str, asset: str) -> str:
    """Fill a topic template; MQTT separators and wildcards in names become ``_``."""
    return template.format(
        gateway=gateway.translate(_TOPIC_UNSAFE), asset=(asset or "_").translate(_TOPIC_UNSAFE)
    )


class TlsKeys(Protocol):
    """The TLS keys an MQTT or Sparkplug sink config has."""

    @property
    def tls(self) -> str: ...
    @property
    def ca_file(self) -> str | None: ...
    @property
    def cert_file(self) -> str | None: ...
    @property
    def key_file(self) -> str | None: ...


def tls_context(config: TlsKeys) -> ssl.SSLContext | None:
    """The TLS context for ``config``: verification on unless ``tls: no-verify``."""
    if config.tls == "off":
        return None
    context = ssl.create_default_context(cafile=config.ca_file)
    if config.tls == "no-verify":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.cert_file:
        context.load_cert_chain(config.cert_file, config.key_file)
    return context


class MqttSink:
    """Publishes outbox records to an MQTT broker at QoS 1.

    Args:
        config: the sink's config.
        gateway: this gateway's id (``agent.id``), for the client id and status topic.
    """

    pipelined = True
    """Overlapping sends keep their order: one connection, published in call order."""

    def __init__(self, config: MqttSinkConfig, gateway: str = "edge-agent") -> None:
        self.config = config
        self.gateway = gateway
        self._client: aiomqtt.Client | None = None
        self._topics: dict[tuple[str, str, str], str] = {}
        self._walk = BrokerWalk(config.brokers())
        self.commands: Executor | None = None
        """Set by the agent when ``commands: on``: commands are read and answered."""
        self._inbox: asyncio.Task[None] | None = None
        self._refusals = PubackWatch(config.name)
        self._status_refused = False

    @property
    def name(self) -> str:
        """The sink's name."""
        return self.config.name

    @property
    def client_id(self) -> str:
        """The fixed client id of the persistent session."""
        return self.config.client_id or f"edge-agent-{self.gateway}-{self.name}"

    def _status(self, state: str) -> tuple[str, bytes]:
        topic = topic_for(self.config.status_topic, self.gateway, "")
        return topic, encode_status(self.gateway, state, time.time())

    def _make_client(self, broker: Broker) -> aiomqtt.Client:
        import aiomqtt
        from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        cfg = self.config
        v5 = cfg.protocol == "5"
        persistent = cfg.session == "persistent"
        properties = None
        if v5 and persistent:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = int(cfg.session_expiry)
        will_topic, will_payload = self._status("offline")
        try:
            context = tls_context(cfg)
        except (OSError, ssl.SSLError) as exc:
            raise DeliveryError(f"{self.name}: cannot load TLS files: {exc}") from exc
        client = aiomqtt.Client(
            broker.host,
            broker.port,
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=aiomqtt.Will(will_topic, will_payload, qos=1, retain=True),
            clean_session=None if v5 else not persistent,
            clean_start=not persistent if v5 else MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
            keepalive=max(1, int(cfg.keepalive)),
            timeout=cfg.timeout,
            max_inflight_messages=cfg.max_inflight,
            tls_context=context,
            tls_insecure=cfg.tls == "no-verify" or None,
        )
        # Two whole batches are awaited at once by design: no warning per publish.
        client.pending_calls_threshold = 2 * cfg.batch_size + 10
        self._refusals.attach(client)
        return client

    async def __aenter__(self) -> Self:
        """Connect (walking the broker list) and publish the retained ``online`` status.

        Raises:
            DeliveryError: every broker unreachable, TLS refused, or CONNACK refused.
        """
        self._client = await self._walk.first_that_connects(self._connect)
        topic, payload = self._status("online")
        try:
            await self._publish(topic, payload, retain=True)
            await self._take_commands(self._client)
        except DeliveryError:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _take_commands(self, client: aiomqtt.Client) -> None:
        """Subscribe to the command topic and answer commands while connected."""
        import aiomqtt

        from edge_agent.commands.inbox import CommandInbox

        if self.commands is None or self.config.commands != "on":
            return
        cfg = self.config
        try:
            await client.subscribe(topic_for(cfg.command_topic, self.gateway, ""), qos=1)
        except aiomqtt.MqttError as exc:
            raise DeliveryError(f"{self.name}: cannot subscribe to commands: {exc}") from exc
        reply_topic = topic_for(cfg.reply_topic, self.gateway, "")
        inbox = CommandInbox(self.commands, f"mqtt:{self.name}", self.gateway, reply_topic)
        self._inbox = asyncio.create_task(inbox.serve(client))

    async def _connect(self, broker: Broker) -> aiomqtt.Client:
        import aiomqtt

        client = self._make_client(broker)
        try:
            await connect(client)  # not client.__aenter__(): a stop must not cut it in half
        except aiomqtt.MqttError as exc:
            raise DeliveryError(self._explain(exc, broker)) from exc
        return client

    def _explain(self, exc: Exception, broker: Broker) -> str:
        where = f"{self.name}: cannot connect to {broker}"
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text:
            ca = self.config.ca_file or "the system CA store"
            return f"{where}: broker certificate not trusted by {ca}: {text}"
        return f"{where}: {text}"

    async def __aexit__(self, *exc_info: object) -> None:
        """Publish ``offline`` (best effort) and disconnect."""
        import aiomqtt

        client, self._client = self._client, None
        if self._inbox is not None:
            self._inbox.cancel()
            await asyncio.gather(self._inbox, return_exceptions=True)
            self._inbox = None
        if client is None:
            return
        topic, payload = self._status("offline")
        # If the link is gone already, the broker publishes the last will instead.
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(topic, payload, qos=1, retain=True, timeout=2.0)
        try:
            await client.__aexit__(None, None, None)
        except aiomqtt.MqttError as exc:
            log.debug("%s: disconnect: %s", self.name, exc)

    def _topic(self, record: Record) -> str:
        key = (record.kind, record.gateway, record.asset)
        topic = self._topics.get(key)
        if topic is None:
            cfg = self.config
            template = {
                "alert": cfg.topic,
                "telemetry": cfg.telemetry_topic,
                "command": cfg.audit_topic,
                "prognosis": cfg.prognosis_topic,
            }.get(record.kind, cfg.notice_topic)
            topic = self._topics[key] = topic_for(template, record.gateway, record.asset)
        return topic

    async def _publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        import aiomqtt

        if self._client is None:
            raise DeliveryError(f"{self.name}: send() outside 'async with'")
        try:
            with self._refusals.window() as window:
                await self._client.publish(topic, payload, qos=1, retain=retain)
        except aiomqtt.MqttError as exc:
            raise DeliveryError(f"{self.name}: publish failed: {exc}") from exc
        if window.refusals and not self._status_refused:
            # The status is no outbox row: alerts still go; said once, not per connect.
            self._status_refused = True
            log.warning("%s: broker refused the status: %s", self.name, window.refusals[0])

    async def send(self, batch: Sequence[Record]) -> None:
        """Publish the batch at QoS 1; returns once every message has its PUBACK.

        Raises:
            DeliveryError: a publish failed, timed out or was refused (MQTT 5 PUBACK
                >= 0x80); the whole batch is kept (redelivery may duplicate: consumers
                dedupe on ``event_id``).
        """
        import aiomqtt

        client = self._client
        if client is None:
            raise DeliveryError(f"{self.name}: send() outside 'async with'")
        with self._refusals.window() as window:
            publishes = asyncio.gather(
                *(client.publish(self._topic(r), r.body, qos=1) for r in batch),
                return_exceptions=True,
            )
            results = await window.unless_refused(publishes)
        if results is None:  # the refusal, not the timeouts it may cause, says what is wrong
            raise RefusedError(f"{self.name}: broker refused the publish: {window.refusals[0]}")
        for result in results:
            if isinstance(result, aiomqtt.MqttError):
                raise DeliveryError(f"{self.name}: publish failed: {result}") from result
            if isinstance(result, BaseException):
                raise result
