"""Device death and rebirth of the sparkplug sink: mosquitto and the independent host.

The link samples here are the ones each poll loop records (``link.<source>``: 1.0 up,
0.0 down, see edge_agent/sources/poll.py); tests/forward/test_sparkplug_modbus.py drives
the same with a real Modbus server stopped and restarted under the whole agent.
Statements are quoted by their TCK id.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from edge_agent.forward.sparkplug import SparkplugSink
from edge_agent.types import Quality, Sample, SignalInfo
from tests.forward.conftest import Mosquitto
from tests.forward.factory import make_alert
from tests.forward.harness import delivering, drained
from tests.forward.sparkplug_host import Host, Message
from tests.forward.sparkplug_host import sparkplug_host as host_on
from tests.forward.test_sparkplug import _config, _outbox, _summary

# press1 is fed by two sources (plc and vib2); vib by one.
INFOS = [
    SignalInfo("plc.temp", "plc", 1.0, asset="press1"),
    SignalInfo("vib2.rms", "vib2", 1.0, asset="press1"),
    SignalInfo("vib.rms", "vib", 1.0),
    SignalInfo("link.plc", "link", 1.0, asset="press1"),
    SignalInfo("link.vib2", "link", 1.0, asset="press1"),
    SignalInfo("link.vib", "link", 1.0, asset="vib"),
    SignalInfo("detect.press1.score", "detect", 1.0, asset="press1"),
]


def _sink(port: int, tmp_path: Path, **extra: Any) -> SparkplugSink:
    sink = SparkplugSink(_config(port, tmp_path, **extra), gateway="gw1")
    sink.describe(INFOS)
    return sink


def _link(source: str, up: bool, ts: float) -> Sample:
    return Sample(f"link.{source}", ts, 1.0 if up else 0.0, Quality.GOOD)


def _down(sink: SparkplugSink, source: str, signal: str, ts: float) -> None:
    """What a poll loop records when its link is lost: its signals BAD, its link 0."""
    sink.on_samples([Sample.bad(signal, ts), _link(source, False, ts)])


def _seqs(messages: list[Message]) -> list[int]:
    """The seq of each message but NDEATH (which has none); every one must have it."""
    seqs = [m.seq for m in messages if m.kind != "NDEATH"]
    assert None not in seqs
    return [seq for seq in seqs if seq is not None]


def _seqs_consecutive(host: Host) -> bool:
    seqs = _seqs(host.messages)
    return seqs[0] == 0 and all(b == (a + 1) % 256 for a, b in itertools.pairwise(seqs))


def _after(host: Host, message: Message) -> list[Message]:
    return host.messages[host.messages.index(message) + 1 :]


async def test_ddeath_when_every_source_is_down_then_dbirth_before_ddata(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """tck-id-operational-behavior-device-ddeath; tck-id-topics-ddeath-{topic,mqtt,seq-num};
    tck-id-payloads-ddeath-{timestamp,seq,seq-inc}; tck-id-message-flow-device-birth-
    publish-nbirth-wait (a DBIRTH later in the session, after the NBIRTH)."""
    sink = _sink(broker.port, tmp_path)
    async with host_on(broker.port) as host, delivering(_outbox(tmp_path), sink, "spark"):
        await host.until(lambda h: len(h.of("DBIRTH")) == 2)
        _down(sink, "vib", "vib.rms", 100.0)
        await host.until(lambda h: len(h.of("DDEATH")) == 1)
        sink.on_samples([Sample("vib.rms", 101.0, 1.0, Quality.GOOD)])  # a stray value
        sink.on_samples([Sample("plc.temp", 101.0, 20.0, Quality.GOOD)])  # press1 lives on
        await host.until(lambda h: any(m.device == "press1" for m in h.of("DDATA")))
        sink.on_samples([Sample("vib.rms", 102.0, 2.5, Quality.GOOD), _link("vib", True, 102.0)])
        await host.until(lambda h: len(h.of("DBIRTH")) == 3)
        sink.on_samples([Sample("vib.rms", 103.0, 3.5, Quality.GOOD)])
        await host.until(lambda h: any(m.device == "vib" for m in h.of("DDATA")))
    (death,) = host.of("DDEATH")
    assert death.topic == "spBv1.0/plant/DDEATH/gw1/vib"
    assert (death.qos, death.retain, death.payload["metrics"]) == (0, False, [])
    assert death.payload["timestamp"] > 0 and death.seq is not None
    reborn = host.of("DBIRTH")[2]
    assert reborn.device == "vib" and reborn.metric("vib/rms")["value"] == 2.5  # current value
    between = host.messages[host.messages.index(death) + 1 : host.messages.index(reborn)]
    assert not [m for m in between if m.device == "vib"], "DDATA for a dead device"
    vib_data = [m for m in _after(host, reborn) if m.kind == "DDATA" and m.device == "vib"]
    assert vib_data[0].metric("vib/rms")["value"] == 3.5
    assert _seqs_consecutive(host)


async def test_a_device_with_one_source_left_stays_born(tmp_path: Path, broker: Mosquitto) -> None:
    """press1 is fed by plc and vib2: with vib2 down it still gives real-time values, so no
    DDEATH; vib2's metric goes to Quality 0. With both down it dies."""
    sink = _sink(broker.port, tmp_path)
    async with host_on(broker.port) as host, delivering(_outbox(tmp_path), sink, "spark"):
        await host.until(lambda h: len(h.of("DBIRTH")) == 2)
        sink.on_samples([Sample("vib2.rms", 99.0, 1.0, Quality.GOOD), _link("vib2", True, 99.0)])
        _down(sink, "vib2", "vib2.rms", 100.0)
        sink.on_samples([Sample("plc.temp", 101.0, 20.0, Quality.GOOD)])
        await host.until(lambda h: any("plc/temp" in _names(m) for m in h.of("DDATA")))
        assert not host.of("DDEATH")
        _down(sink, "plc", "plc.temp", 102.0)
        await host.until(lambda h: len(h.of("DDEATH")) == 1)
    bad = [m for d in host.of("DDATA") for m in d.payload["metrics"] if m["name"] == "vib2/rms"]
    assert bad[-1]["is_null"] and bad[-1]["properties"]["Quality"]["int_value"] == 0
    assert host.of("DDEATH")[0].device == "press1"
    assert _seqs_consecutive(host)


def _names(message: Message) -> set[str]:
    return {m["name"] for m in message.payload["metrics"]}


async def test_rebirth_births_only_reachable_devices(tmp_path: Path, broker: Mosquitto) -> None:
    """tck-id-operational-behavior-data-commands-rebirth-action-{1,2,3}: "a complete BIRTH
    sequence including the NBIRTH and DBIRTH(s) if applicable"; a dead device is owed no
    birth, so the host keeps it offline until it is back."""
    sink = _sink(broker.port, tmp_path)
    async with host_on(broker.port) as host, delivering(_outbox(tmp_path), sink, "spark"):
        await host.until(lambda h: len(h.of("DBIRTH")) == 2)
        _down(sink, "vib", "vib.rms", 100.0)
        await host.until(lambda h: len(h.of("DDEATH")) == 1)
        await host.rebirth("plant", "gw1", int(time.time() * 1000))
        await host.until(lambda h: len(h.of("NBIRTH")) == 2)
        await host.until(lambda h: len(h.of("DBIRTH")) == 3)
        sink.on_samples([_link("vib", True, 101.0)])
        await host.until(lambda h: len(h.of("DBIRTH")) == 4)
    second = host.of("NBIRTH")[1]
    births = [m for m in _after(host, second) if m.kind == "DBIRTH"]
    assert [m.device for m in births] == ["press1", "vib"]
    assert host.messages[host.messages.index(second) + 1].device == "press1"
    assert host.messages[host.messages.index(second) + 2].device == "vib"  # only when back
    assert second.seq == 0 and _seqs_consecutive_from(host, second)


def _seqs_consecutive_from(host: Host, first: Message) -> bool:
    seqs = _seqs([first, *_after(host, first)])
    return all(b == (a + 1) % 256 for a, b in itertools.pairwise(seqs))


async def test_alerts_of_a_dead_device_go_out_as_ndata(tmp_path: Path, broker: Mosquitto) -> None:
    """An alert event of a dead device is published at once on the node (NDATA, whose
    ``Alert/*`` the NBIRTH carries) and acknowledged; none is held, none is sent as DDATA
    after the DDEATH. Back alive, the DBIRTH carries the device's alert state."""
    outbox = _outbox(tmp_path)
    sink = _sink(broker.port, tmp_path)
    async with host_on(broker.port) as host, delivering(outbox, sink, "spark") as wake:
        await host.until(lambda h: len(h.of("DBIRTH")) == 2)
        _down(sink, "vib", "vib.rms", 100.0)
        await host.until(lambda h: len(h.of("DDEATH")) == 1)
        outbox.put_alerts([make_alert(n, asset="vib") for n in (1, 2)], "gw1")
        wake.set()
        await drained(outbox, "spark")
        sink.on_samples([_link("vib", True, 101.0)])
        await host.until(lambda h: len(h.of("DBIRTH")) == 3)
    ndata = [m for d in host.of("NDATA") for m in d.payload["metrics"]]
    events = [m["value"] for m in ndata if m["name"] == "Alert/Id"]  # one batch, one NDATA
    assert events == [make_alert(n, asset="vib").id for n in (1, 2)]
    counts = [m["value"] for m in ndata if m["name"] == "Alert/Open Count"]
    assert counts == [1, 2]  # the asset's open alerts
    assert all('"asset":"vib"' in m["value"] for m in ndata if m["name"] == "Alert/Event")
    death = host.of("DDEATH")[0]
    assert not [m for m in _after(host, death) if m.kind == "DDATA" and m.device == "vib"]
    reborn = host.of("DBIRTH")[2]
    assert reborn.metric("Alert/Active")["value"] is True
    assert reborn.metric("Alert/Id")["value"] == make_alert(2, asset="vib").id
    assert _seqs_consecutive(host)


async def test_a_device_down_before_the_session_is_not_born(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """Births at connect skip a device already dead; it is born when its source is back."""
    sink = _sink(broker.port, tmp_path)
    _down(sink, "vib", "vib.rms", 100.0)
    async with host_on(broker.port) as host, delivering(_outbox(tmp_path), sink, "spark"):
        await host.until(lambda h: len(h.of("DBIRTH")) == 1)
        sink.on_samples([Sample("vib.rms", 101.0, 4.0, Quality.GOOD), _link("vib", True, 101.0)])
        await host.until(lambda h: len(h.of("DBIRTH")) == 2)
    assert [m.device for m in host.of("DBIRTH")] == ["press1", "vib"]
    assert not host.of("DDEATH")  # never born in this session: nothing to end
    assert host.of("DBIRTH")[1].metric("vib/rms")["value"] == 4.0
    assert _seqs_consecutive(host)


async def test_stored_values_of_a_dead_device_are_not_sent_as_ddata(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """A telemetry summary the live path did not deliver, sent while its device is dead: no
    DDATA after the DDEATH (no metric of it is born on the node), acknowledged all the same
    so the outbox does not stall; values of live devices in the same batch still go out."""
    outbox = _outbox(tmp_path)
    sink = _sink(broker.port, tmp_path)
    async with host_on(broker.port) as host, delivering(outbox, sink, "spark") as wake:
        await host.until(lambda h: len(h.of("DBIRTH")) == 2)
        _down(sink, "vib", "vib.rms", 100.0)
        await host.until(lambda h: len(h.of("DDEATH")) == 1)
        early = time.time() - 60  # before the session: never covered by the live path
        summaries = [_summary("vib.rms", early, early + 1, 7.0),
                     _summary("plc.temp", early, early + 1, 8.0)]  # fmt: skip
        outbox.put_telemetry(summaries, "gw1", ["spark"])
        wake.set()
        await drained(outbox, "spark")
        await host.until(lambda h: any(m.device == "press1" for m in h.of("DDATA")))
    death = host.of("DDEATH")[0]
    after = [m for m in _after(host, death) if m.kind in ("DDATA", "NDATA")]
    assert [(m.kind, m.device) for m in after] == [("DDATA", "press1")]
    assert after[0].metric("plc/temp")["is_historical"] is True
    assert sink.devices.withheld == {"vib": 1}
    assert _seqs_consecutive(host)


async def test_a_death_still_pending_at_a_rebirth_follows_the_births(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """vib dies while its DDEATH waits for ``data_interval``; a rebirth request comes first:
    NBIRTH and the reachable devices' DBIRTH, then vib's DDEATH, so the host cannot keep
    holding it as online from the earlier birth."""
    sink = _sink(broker.port, tmp_path, data_interval="10s")
    async with host_on(broker.port) as host, delivering(_outbox(tmp_path), sink, "spark"):
        await host.until(lambda h: len(h.of("DBIRTH")) == 2)
        _down(sink, "vib", "vib.rms", 100.0)
        await host.rebirth("plant", "gw1", int(time.time() * 1000))
        await host.until(lambda h: len(h.of("DDEATH")) == 1)
    second = host.of("NBIRTH")[1]
    after = [(m.kind, m.device) for m in _after(host, second)][:2]
    assert after == [("DBIRTH", "press1"), ("DDEATH", "vib")]
    assert second.seq == 0 and _seqs_consecutive_from(host, second)  # NBIRTH restarts seq
