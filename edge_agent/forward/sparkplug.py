"""The ``sparkplug`` sink: this gateway as a Sparkplug B 3.0 edge node.

Two paths leave the node, and neither waits for the other:

- **Live**: the agent hands every sample to :meth:`SparkplugSink.on_samples` (the
  recorder's observer hook, see :func:`edge_agent.forward.live.attach_live`). While a
  session is up, values that pass their deadband are gathered for ``data_interval``
  and published as one DDATA per device (report by exception).
- **Stored**: :func:`~edge_agent.forward.delivery.deliver_forever` drains the outbox
  through :meth:`SparkplugSink.send`, as for every sink. Alerts become ``Alert/*``
  metrics. A telemetry summary whose window the live path did not cover from start to
  end (the broker or the Primary Host was away, or the agent was stopped) becomes the
  signal's value at the window's end with ``is_historical = true``; covered windows
  are acknowledged without sending, the live path already told the host.

Session: connect (walking ``servers``) with bdSeq = the last one + 1 (kept in
``state_file``, consumed before each connect so a number is never reused), wait for the
Primary Host's STATE online if one is configured, then NBIRTH (seq 0) and one DBIRTH per
device; then the backlog, then live data. An NCMD ``Node Control/Rebirth = true``
repeats the births with the same bdSeq. A clean stop publishes NDEATH before DISCONNECT.

A reload that changes the sink itself restarts it: NDEATH and DISCONNECT, then a new
session (the next bdSeq, new births) that keeps what the old one learnt
(:meth:`SparkplugSink.take_over`).

Devices: a device whose sources are all down gets a DDEATH and no DDATA until it is
reachable again, then a DBIRTH with the current values (see
:mod:`edge_agent.forward.sparkplug_devices`); births skip dead devices. A reload
hands the sink a new signal catalogue (:meth:`SparkplugSink.recatalogue`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from edge_agent.cancel import cancel_was_swallowed
from edge_agent.errors import DeliveryError
from edge_agent.forward.brokers import Broker, BrokerWalk
from edge_agent.forward.outbox_rows import Record
from edge_agent.forward.sparkplug_config import SparkplugSinkConfig
from edge_agent.forward.sparkplug_devices import Devices, feeders
from edge_agent.forward.sparkplug_namespace import NODE, REBIRTH, Namespace
from edge_agent.forward.sparkplug_payload import MetricValue
from edge_agent.forward.sparkplug_session import BdSeqFile, HostWatch, Session
from edge_agent.types import Sample, SignalInfo

if TYPE_CHECKING:
    from edge_agent.commands.executor import Executor

log = logging.getLogger(__name__)


class SparkplugSink:
    """Publishes the agent's signals and alerts as a Sparkplug B edge node.

    Args:
        config: the sink's config.
        gateway: ``agent.id``, the default edge node id.
    """

    pipelined = False
    """One batch at a time: each is confirmed by its own barrier."""

    def __init__(self, config: SparkplugSinkConfig, gateway: str = "edge-agent") -> None:
        self.config = config
        self.node = config.edge_node_id or gateway
        self.namespace = Namespace([], config.deadband, config.deadbands)
        self.devices = Devices()
        self.bd_seq_file = BdSeqFile(Path(config.state_file or f"sparkplug-{config.name}.json"))
        self.host = HostWatch(config.primary_host) if config.primary_host else None
        self.walk = BrokerWalk(config.brokers())
        self.session: Session | None = None
        self.spans: list[list[float]] = []
        """Live spans ``[births, last confirmed]``: what the host surely got live."""
        self._live = False
        self._pending: dict[str, list[MetricValue]] = {}
        self._wake = asyncio.Event()
        self._naming = asyncio.Lock()
        """Held while metric names are read across awaits (births, a stored batch) and
        while a reload changes them."""
        self._tasks: list[asyncio.Task[None]] = []
        self.commands: Executor | None = None
        """Set by the agent when ``commands: on``: metric writes are run and answered."""

    @property
    def name(self) -> str:
        """The sink's name."""
        return self.config.name

    def describe(self, infos: Sequence[SignalInfo]) -> None:
        """Every signal the agent produces: the births carry them all."""
        self.namespace = Namespace(list(infos), self.config.deadband, self.config.deadbands)
        self.namespace.commands = self.config.commands == "on"
        self.devices = Devices(feeders(self.namespace, infos))

    def take_over(self, old: SparkplugSink) -> None:
        """A reload restarted this sink (its config changed): keep what ``old`` learnt.

        Call after :meth:`describe`. Current values, the alert metrics, drop counts and
        the sources known down carry over, so the new session's births tell the host
        what the old session's would have; what was sent and born belonged to the old
        session, which its NDEATH ended.
        """
        learnt = old.namespace.with_catalogue(self.namespace.infos)
        learnt.deadband, learnt.deadbands = self.namespace.deadband, self.namespace.deadbands
        learnt.commands, learnt.sent = self.namespace.commands, {}
        self.namespace = learnt
        self.devices = old.devices.with_feeds(self.devices.feeds, set())
        self.devices.born.clear()
        self.devices.retire.clear()

    async def recatalogue(self, infos: Sequence[SignalInfo]) -> None:
        """A reload changed the signals: new devices born, changed ones born again, gone ones dead.

        A born device whose metric set changed gets a DDEATH then a DBIRTH, one no
        longer in the catalogue a DDEATH, a new one a DBIRTH (see
        :mod:`edge_agent.forward.sparkplug_devices`): at once while a session is up,
        else the next births carry the new catalogue. The names change under the
        session's lock, so no DATA goes out between them and the births.
        """
        async with self._naming:
            session = self.session if self.live else None
            async with session.lock if session is not None else contextlib.nullcontext():
                namespace = self.namespace.with_catalogue(infos)
                reshaped = self.namespace.reshaped(namespace)
                self.namespace = namespace
                self.devices = self.devices.with_feeds(feeders(namespace, infos), reshaped)
                if session is None:
                    self._wake.set()  # births may be out already: the live loop retires
                    return
                try:
                    await self._lifecycle(session, self._pending)
                except DeliveryError as exc:  # this session ends; the next births follow
                    log.warning("%s: births after the reload not sent: %s", self.name, exc)

    # -- live --------------------------------------------------------------

    @property
    def live(self) -> bool:
        """True between the births and the end of the session."""
        return self._live

    def on_samples(self, batch: Sequence[Sample]) -> None:
        """Called on the event loop for every polled or derived batch; never blocks."""
        self.namespace.observe(batch)
        moved = self.devices.observe(batch)  # births skip dead devices: keep it current
        if not self.live:
            return
        for device, metrics in self.namespace.changes(batch).items():
            self._pending.setdefault(device, []).extend(metrics)
            self._wake.set()
        if moved:
            self._wake.set()  # a DDEATH or DBIRTH is due

    def on_alerts(self, alerts: Sequence[Any]) -> None:
        """Alerts travel through the outbox (durable); nothing to do here."""

    async def _live_forever(self, session: Session) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.config.data_interval)  # gather one interval's changes
            self._wake.clear()
            async with session.lock:  # taken inside: a reload's births drop what they cover
                pending, self._pending = self._pending, {}
                await self._lifecycle(session, pending)
                for device, metrics in pending.items():
                    if device in self.devices.born:  # a dead device's changes are dropped
                        metrics.sort(key=lambda m: m.ts)
                        await self._publish_data(session, device, metrics)
            if cancel_was_swallowed():  # by a publish: the wait for changes would not end
                raise asyncio.CancelledError

    async def _lifecycle(self, session: Session, pending: dict[str, list[MetricValue]]) -> None:
        """DDEATH for born devices now unreachable, DBIRTH for reachable ones not born.

        Both before this interval's DDATA: a device's changes gathered before its
        DBIRTH are older than the values the birth carries, so they are dropped.
        """
        for device in self.devices.dying():
            if device in self.devices.retire:
                log.info("%s: device %s: its metrics changed (reload): DDEATH", self.name, device)
            else:
                log.warning("%s: device %s unreachable (%s down): DDEATH", self.name, device,
                            ", ".join(self.devices.down_sources(device)))  # fmt: skip
            await self._death(session, device)
            pending.pop(device, None)
        now = time.time()
        for device in self.devices.reviving(self.namespace.devices):
            withheld = self.devices.withheld.pop(device, 0)
            note = f" ({withheld} values of it not sent while dead)" if withheld else ""
            log.info("%s: device %s reachable: DBIRTH%s", self.name, device, note)
            await self._device_birth(session, device, now)
            pending.pop(device, None)

    async def _death(self, session: Session, device: str) -> None:
        """DDEATH: seq and timestamp, no metrics (tck-id-topics-ddeath-seq-num,
        tck-id-payloads-ddeath-timestamp); QoS 0, not retained (tck-id-topics-ddeath-mqtt)."""
        self.devices.born.discard(device)
        self.devices.retire.discard(device)
        await session.publish(session.topic("DDEATH", device), [])

    async def _device_birth(self, session: Session, device: str, now: float) -> None:
        metrics = self.namespace.device_birth(device, now)
        await session.publish(session.topic("DBIRTH", device), metrics, birth=True)
        self.devices.born.add(device)

    async def _publish_data(
        self, session: Session, device: str, metrics: list[MetricValue]
    ) -> None:
        """DDATA for a born device, NDATA for the node; a dead device's go to the node.

        A DDATA after the device's DDEATH would break the host's view of it, so what
        the node also carries (an alert event, a command's answer) moves to NDATA.
        """
        if self.devices.retire:  # a reload during the births: its births come first
            await self._lifecycle(session, self._pending)
        if device != NODE and device not in self.devices.born:
            metrics = self.devices.to_node(self.namespace, device, metrics)
            device = NODE
        if not metrics:
            return
        topic = session.topic("NDATA") if device == NODE else session.topic("DDATA", device)
        await session.publish(topic, metrics)

    # -- session -----------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Connect (walking the brokers), wait for the Primary Host, publish the births.

        Raises:
            DeliveryError: no broker reachable, or the Primary Host offline on each.
        """
        self.session = await self.walk.first_that_connects(self._connect)
        if cancel_was_swallowed():  # by aiomqtt's connect (see edge_agent.cancel)
            await self.__aexit__(None, None, None)
            raise asyncio.CancelledError
        now = time.time()
        self.spans.append([now, now])
        self._live = True
        self._tasks = [asyncio.create_task(self._live_forever(self.session))]
        log.info("%s: edge node %s online on %s (bdSeq %d)", self.name, self.node,
                 self.walk.current, self.session.bd_seq)  # fmt: skip
        return self

    async def _connect(self, broker: Broker) -> Session:
        session = Session(self.config, self.node, self.bd_seq_file.next(), self._command, self.host)
        await session.open(broker)
        try:
            await self._await_host(session, broker)
            await self._births(session)
        except BaseException:  # a cancel too: leave no connection behind
            await session.close(death=True)
            raise
        return session

    async def _await_host(self, session: Session, broker: Broker) -> None:
        """Births wait for the Primary Host's STATE online (its retained one comes at once)."""
        host = self.host
        if host is None:
            return
        host.online = False  # a retained STATE on this broker tells its own story
        try:
            async with asyncio.timeout(self.config.timeout):
                while not host.online and not session.lost.done():
                    host.changed.clear()
                    await host.changed.wait()
        except TimeoutError:
            raise DeliveryError(
                f"{self.name}: primary host {host.host} did not say online on {broker}"
            ) from None
        if session.lost.done():
            raise DeliveryError(f"{self.name}: primary host {host.host} offline on {broker}")

    async def _births(self, session: Session) -> None:
        """NBIRTH (seq 0) then a DBIRTH per reachable device, with no data between them.

        A dead device gets none: a rebirth is "a complete BIRTH sequence including the
        NBIRTH and DBIRTH(s) if applicable" (tck-id-operational-behavior-data-commands-
        rebirth-action-2), and a device that "cannot provide real time information"
        is owed a DDEATH, not a birth. One born earlier in this session that died
        since (or left the catalogue in a reload), its DDEATH not yet out, gets it right
        after the births.
        """
        async with self._naming, session.lock:
            self._pending.clear()  # the births carry the current values
            now = time.time()
            birth = self.namespace.node_birth(session.bd_seq, now)
            await session.publish(session.topic("NBIRTH"), birth, birth=True, first=True)
            dying = set(self.devices.dying())
            self.devices.born.clear()
            self.devices.retire.clear()  # a birth sequence announces the new metric sets
            born = self.devices.reachable(self.namespace.devices)
            for device in born:
                await self._device_birth(session, device, now)
            for device in sorted(dying - set(born)):
                await self._death(session, device)

    def _command(self, metrics: dict[str, Any], device: str = NODE) -> None:
        if self.session is None:
            return
        self._tasks = [t for t in self._tasks if not t.done()]
        if device == NODE and metrics.pop(REBIRTH, None) is True:
            log.info("%s: rebirth requested", self.name)
            self._tasks.append(asyncio.create_task(self._rebirth(self.session)))
        if self.commands is None or self.config.commands != "on":
            return
        for metric, value in metrics.items():
            write = self._write_metric(self.session, self.commands, device, metric, value)
            self._tasks.append(asyncio.create_task(write))

    async def _write_metric(
        self, session: Session, executor: Executor, device: str, metric: str, value: Any
    ) -> None:
        """Run one metric write as a command; answer with one NDATA / DDATA."""
        from edge_agent.commands.message import BadCommand, bad_reply
        from edge_agent.forward.sparkplug_commands import command_of, find_signal, reply_metrics

        origin = f"sparkplug:{self.name}"
        signal = find_signal(self.namespace, device, metric)
        command = command_of(signal or "", metric, device, value, origin)
        if signal is None:
            where = f"device {device}" if device else "the node"
            reply = bad_reply(BadCommand(f"no metric {metric!r} is born on {where}", command.id),
                              origin, time.time())  # fmt: skip
            await executor.reject(reply)
        else:
            reply = await executor.execute(command)
        current = self.namespace.current.get(signal or "")
        now = time.time()
        answer = reply_metrics(reply, metric, current.value if current else None, now)
        try:
            async with session.lock:
                await self._publish_data(session, device, answer)
        except DeliveryError as exc:
            log.warning("%s: answer to %s not sent (the audit event keeps it): %s",
                        self.name, command.id, exc)  # fmt: skip

    async def _rebirth(self, session: Session) -> None:
        try:
            await self._births(session)
        except DeliveryError as exc:
            log.warning("%s: rebirth failed: %s", self.name, exc)

    async def __aexit__(self, *exc_info: object) -> None:
        """NDEATH, then DISCONNECT; after a Primary Host offline, walk to the next broker."""
        session, self.session = self.session, None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._live = False
        self.devices.born.clear()  # the NDEATH ends every device with the node
        self.devices.retire.clear()
        if session is not None:
            await session.close(death=True)
            if self.host is not None and not self.host.online:
                self.walk.advance()

    def session_lost(self) -> asyncio.Future[None] | None:
        """Completes (with a DeliveryError) when the session ends by itself."""
        return None if self.session is None else self.session.lost

    # -- stored ------------------------------------------------------------

    def covered(self, start: float, end: float) -> bool:
        """True when the live path surely delivered ``[start, end)``.

        That is: a session was born before ``start``, and a barrier confirmed it after
        ``end`` plus one ``data_interval`` (the last changes may wait that long). Live
        data sent into a link that was dying is not confirmed, so its window is sent
        again from the outbox.
        """
        late = end + self.config.data_interval
        return any(born <= start and confirmed >= late for born, confirmed in self.spans)

    async def _confirm(self, session: Session) -> None:
        """A barrier: everything published live so far has reached the broker."""
        now = time.time()
        await session.barrier()
        if self._live and session is self.session:
            self.spans[-1][1] = now

    async def send(self, batch: Sequence[Record]) -> None:
        """Publish the backlog (historical values, alerts, drop notices), then confirm it.

        Raises:
            DeliveryError: the session is gone; the batch stays in the outbox.
        """
        session = self.session
        if session is None or session.lost.done():
            raise DeliveryError(f"{self.name}: not connected")
        await self._confirm(session)
        async with self._naming:  # mapped and published under the same names
            grouped: dict[str, list[MetricValue]] = {}
            now = time.time()
            for record in batch:
                if record.kind == "telemetry" and self._was_live(record):
                    continue
                mapped = self.namespace.from_record(record, now)
                if mapped is not None:
                    grouped.setdefault(mapped[0], []).extend(mapped[1])
            for device, metrics in grouped.items():
                async with session.lock:  # never inside a birth sequence; live data interleaves
                    await self._publish_data(session, device, metrics)
        await session.barrier()

    def _was_live(self, record: Record) -> bool:
        body = json.loads(record.body)
        return self.covered(float(body["start"]), float(body["end"]))
