"""The sparkplug sink against mosquitto and an independent host, one test per normative statement.

The host (tests/forward/sparkplug_host.py) decodes every message with its own wire
decoder. Statements are quoted by their TCK id where the specification gives one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.forward.config import OutboxConfig
from edge_agent.forward.encode import TelemetrySummary
from edge_agent.forward.outbox import Outbox
from edge_agent.forward.sparkplug import SparkplugSink
from edge_agent.forward.sparkplug_config import SparkplugSinkConfig
from edge_agent.forward.sparkplug_payload import MetricValue, encode
from edge_agent.types import Quality, Sample, SignalInfo
from tests.forward.conftest import Mosquitto
from tests.forward.factory import make_alert
from tests.forward.harness import delivering, drained
from tests.forward.sparkplug_host import BOOLEAN, DOUBLE, INT64, Host, Proxy, decode_payload
from tests.forward.sparkplug_host import sparkplug_host as host_on
from tests.test_cancel import answer_with_the_stop

INFOS = [
    SignalInfo("plc.temp", "plc", 1.0, asset="press1", unit="degC"),
    SignalInfo("plc.speed", "plc", 1.0, asset="press1"),
    SignalInfo("vib.rms", "vib", 1.0),
]


def _config(port: int, tmp_path: Path, **extra: Any) -> SparkplugSinkConfig:
    values: dict[str, Any] = {
        "type": "sparkplug", "name": "spark", "servers": [f"127.0.0.1:{port}"],
        "tls": "off", "group_id": "plant", "backoff": "50ms", "backoff_max": "300ms",
        "timeout": "2s", "data_interval": "0ms", "state_file": str(tmp_path / "bdseq.json"),
        **extra,
    }  # fmt: skip
    return SparkplugSinkConfig.model_validate(values)


def _sink(port: int, tmp_path: Path, **extra: Any) -> SparkplugSink:
    sink = SparkplugSink(_config(port, tmp_path, **extra), gateway="gw1")
    sink.describe(INFOS)
    return sink


def _outbox(tmp_path: Path) -> Outbox:
    return Outbox.open(tmp_path / "outbox.db", OutboxConfig(), ["spark"])


def _seqs(host: Host) -> list[int]:
    seqs = [m.seq for m in host.messages if m.kind != "NDEATH"]
    assert None not in seqs, "every message but NDEATH carries a seq"
    return [seq for seq in seqs if seq is not None]


def _births(n: int) -> Any:
    return lambda h: len(h.of("NBIRTH")) >= n and len(h.of("DBIRTH")) >= 2 * n


def _deaths(n: int) -> Callable[[Host], bool]:
    return lambda h: len(h.of("NDEATH")) == n


def _reborn_after(n: int) -> Callable[[Host], bool]:
    """``n`` sessions ended (NDEATH each) and the births of the next one seen."""
    return lambda h: _deaths(n)(h) and _births(n + 1)(h)


def test_our_encoding_reads_back_with_the_independent_decoder() -> None:
    body = encode(
        [
            MetricValue("bdSeq", INT64, 7, 1.5),
            MetricValue("a/b", DOUBLE, -2.25, 2.0, quality=192, historical=True),
            MetricValue("x", DOUBLE, None, 3.0, quality=0),
        ],
        4.0,
        9,
    )
    payload = decode_payload(body)
    assert payload["timestamp"] == 4000 and payload["seq"] == 9
    bd, value, null = payload["metrics"]
    assert (bd["name"], bd["datatype"], bd["value"], bd["value_field"]) == (
        "bdSeq",
        INT64,
        7,
        "long_value",
    )
    assert value["value"] == -2.25 and value["is_historical"] and value["timestamp"] == 2000
    assert value["properties"]["Quality"] == {"type": 3, "int_value": 192}
    assert (
        null["is_null"] and "value" not in null and null["properties"]["Quality"]["int_value"] == 0
    )


async def test_will_is_ndeath_with_bdseq_qos1_not_retained(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """tck-id-message-flow-edge-node-birth-publish-will-message-{topic,payload-bdSeq,qos,will-retained};
    tck-id-topics-ndeath-seq; tck-id-topics-nbirth-bdseq-matching/-increment."""
    proxy = Proxy(broker.port)
    await proxy.start()
    sink = _sink(proxy.port, tmp_path)
    async with host_on(broker.port) as host, delivering(_outbox(tmp_path), sink, "spark"):
        await host.until(_births(1))
        first = host.of("NBIRTH")[0].metric("bdSeq")
        assert (first["datatype"], first["value"]) == (INT64, 0)
        proxy.cut()  # no DISCONNECT: the broker publishes the will
        await host.until(lambda h: len(h.of("NDEATH")) >= 1 and len(h.of("NBIRTH")) >= 2)
    death = host.of("NDEATH")[0]
    assert death.topic == "spBv1.0/plant/NDEATH/gw1"
    assert death.qos == 1 and not death.retain and death.seq is None
    assert [m["name"] for m in death.payload["metrics"]] == ["bdSeq"]
    assert death.metric("bdSeq")["value"] == 0 and death.metric("bdSeq")["datatype"] == INT64
    assert host.of("NBIRTH")[1].metric("bdSeq")["value"] == 1  # one more per CONNECT
    await proxy.stop()


async def test_bdseq_survives_a_restart(tmp_path: Path, broker: Mosquitto) -> None:
    """tck-id-topics-nbirth-bdseq-increment across a restart of the agent (state_file)."""
    async with host_on(broker.port) as host:
        for expected in (0, 1):
            async with delivering(_outbox(tmp_path), _sink(broker.port, tmp_path), "spark"):
                await host.until(_reborn_after(expected))
            await host.until(_deaths(expected + 1))
        assert [m.metric("bdSeq")["value"] for m in host.of("NBIRTH")] == [0, 1]
        assert [m.metric("bdSeq")["value"] for m in host.of("NDEATH")] == [0, 1]


async def test_birth_contents(tmp_path: Path, broker: Mosquitto) -> None:
    """tck-id-topics-nbirth-{mqtt,seq-num,timestamp,metrics,bdseq-included,rebirth-metric};
    tck-id-operational-behavior-data-publish-{nbirth,dbirth}-values;
    tck-id-topics-dbirth-{mqtt,seq}."""
    sink = _sink(broker.port, tmp_path)
    sink.on_samples([Sample("plc.temp", 100.0, 71.5, Quality.GOOD),
                     Sample("vib.rms", 100.0, None, Quality.BAD)])  # fmt: skip
    async with host_on(broker.port) as host, delivering(_outbox(tmp_path), sink, "spark"):
        await host.until(_births(1))
    nbirth, press1, vib = host.messages[:3]
    assert (nbirth.topic, nbirth.qos, nbirth.retain, nbirth.seq) == (
        "spBv1.0/plant/NBIRTH/gw1",
        0,
        False,
        0,
    )
    assert nbirth.payload["timestamp"] > 0
    rebirth = nbirth.metric("Node Control/Rebirth")
    assert (rebirth["datatype"], rebirth["value"], "alias" in rebirth) == (BOOLEAN, False, False)
    assert (press1.topic, press1.seq, vib.topic, vib.seq) == (
        "spBv1.0/plant/DBIRTH/gw1/press1", 1, "spBv1.0/plant/DBIRTH/gw1/vib", 2)  # fmt: skip
    for message in (nbirth, press1, vib):
        assert all(
            {"name", "datatype", "timestamp"} <= m.keys() for m in message.payload["metrics"]
        )
        assert all(m.get("is_null") != ("value" in m) for m in message.payload["metrics"])
    temp, speed = press1.metric("plc/temp"), press1.metric("plc/speed")
    assert (temp["datatype"], temp["value"], temp["timestamp"]) == (DOUBLE, 71.5, 100_000)
    assert temp["properties"]["Quality"]["int_value"] == 192
    assert speed["is_null"]  # never polled yet
    rms = vib.metric("vib/rms")
    assert rms["is_null"] and rms["properties"]["Quality"]["int_value"] == 0
    assert press1.metric("Alert/Active")["is_null"]


async def test_ddata_by_exception_with_deadband(tmp_path: Path, broker: Mosquitto) -> None:
    """tck-id-operational-behavior-data-publish-dbirth-change: DDATA only when a value moved."""
    sink = _sink(broker.port, tmp_path, deadband=0.5, deadbands={"plc.speed": 10.0})
    async with host_on(broker.port) as host, delivering(_outbox(tmp_path), sink, "spark"):
        await host.until(_births(1))
        for n, (temp, speed) in enumerate([(20.0, 100.0), (20.2, 105.0), (21.0, 111.0)]):
            sink.on_samples([Sample("plc.temp", 200.0 + n, temp, Quality.GOOD),
                             Sample("plc.speed", 200.0 + n, speed, Quality.GOOD)])  # fmt: skip
            await asyncio.sleep(0.05)
        sink.on_samples([Sample("plc.temp", 210.0, 21.1, Quality.UNCERTAIN)])  # quality moved
        await host.until(lambda h: any(m.metric("plc/temp")["timestamp"] == 210_000
                                       for m in h.of("DDATA")))  # fmt: skip
    sent = [(m["name"], m["value"]) for d in host.of("DDATA") for m in d.payload["metrics"]]
    assert sent == [("plc/temp", 20.0), ("plc/speed", 100.0), ("plc/temp", 21.0),
                    ("plc/speed", 111.0), ("plc/temp", 21.1)]  # fmt: skip
    last = host.of("DDATA")[-1].payload["metrics"][0]
    assert last["properties"]["Uncertain"]["boolean_value"] is True
    assert all("datatype" not in m for d in host.of("DDATA") for m in d.payload["metrics"])


async def test_seq_wraps_after_255_across_all_messages(tmp_path: Path, broker: Mosquitto) -> None:
    """tck-id-payloads-sequence-num-incrementing: +1 per message, 255 then 0."""
    sink = _sink(broker.port, tmp_path)
    async with host_on(broker.port) as host, delivering(_outbox(tmp_path), sink, "spark"):
        await host.until(_births(1))
        for n in range(300):
            sink.on_samples([Sample("vib.rms", 300.0 + n, float(n), Quality.GOOD)])
            await asyncio.sleep(0)
            await asyncio.sleep(0.002)
        await host.until(lambda h: len(h.of("DDATA")) >= 290)
    seqs = _seqs(host)
    assert seqs[0] == 0 and 255 in seqs
    assert all(b == (a + 1) % 256 for a, b in itertools.pairwise(seqs))


async def test_rebirth_keeps_bdseq(tmp_path: Path, broker: Mosquitto) -> None:
    """tck-id-operational-behavior-data-commands-rebirth-action-{1,2,3}."""
    sink = _sink(broker.port, tmp_path)
    async with host_on(broker.port) as host, delivering(_outbox(tmp_path), sink, "spark"):
        await host.until(_births(1))
        sink.on_samples([Sample("plc.temp", 400.0, 50.0, Quality.GOOD)])
        await host.until(lambda h: len(h.of("DDATA")) == 1)
        await host.rebirth("plant", "gw1", int(time.time() * 1000))
        await host.until(_births(2))
    kinds = [m.kind for m in host.messages][:7]  # an NDEATH follows at the stop
    assert kinds == ["NBIRTH", "DBIRTH", "DBIRTH", "DDATA", "NBIRTH", "DBIRTH", "DBIRTH"]
    first, second = host.of("NBIRTH")
    assert second.seq == 0 and host.messages[6].seq == 2
    assert second.metric("bdSeq")["value"] == first.metric("bdSeq")["value"]
    assert host.messages[5].metric("plc/temp")["value"] == 50.0  # the birth has the current value


async def test_primary_host_state_offline_then_online(tmp_path: Path, broker: Mosquitto) -> None:
    """tck-id-message-flow-edge-node-birth-publish-phid-{wait,wait-online,wait-timestamp,offline};
    tck-id-operational-behavior-edge-node-termination-host-offline{,-timestamp,-reconnect}."""
    sink = _sink(broker.port, tmp_path, primary_host="scada", timeout="500ms")
    async with host_on(broker.port) as host:
        await host.state("scada", False, 1000)
        async with delivering(_outbox(tmp_path), sink, "spark"):
            await asyncio.sleep(1.5)  # several connects, each sees the host offline
            assert not host.of("NBIRTH")
            await host.state("scada", True, 2000)
            await host.until(_births(1))
            await host.state("scada", False, 1500)  # older than the online: stale, ignored
            await host.state("scada", True, 3000)  # a newer online: nothing to do
            await host.state("scada", False, 3000)
            await host.until(lambda h: len(h.of("NDEATH")) >= 1)
            births_when_dead = len(host.of("NBIRTH"))
            await host.state("scada", True, 4000)
            await host.until(_births(2))
    assert births_when_dead == 1  # the stale offline did not end the session
    # Each connect while the host was offline ended in an NDEATH; then one session.
    lifecycle = [(m.kind, m.metric("bdSeq")["value"]) for m in host.of("NBIRTH", "NDEATH")]
    first = lifecycle.index(next(x for x in lifecycle if x[0] == "NBIRTH"))
    assert all(kind == "NDEATH" for kind, _ in lifecycle[:first])
    born, died, reborn = lifecycle[first : first + 3]
    assert died == ("NDEATH", born[1]) and reborn[0] == "NBIRTH" and reborn[1] > born[1]


async def test_clean_shutdown_publishes_ndeath(tmp_path: Path, broker: Mosquitto) -> None:
    """tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath."""
    async with host_on(broker.port) as host:
        async with delivering(_outbox(tmp_path), _sink(broker.port, tmp_path), "spark"):
            await host.until(_births(1))
        await host.until(lambda h: len(h.of("NDEATH")) == 1)
    death = host.of("NDEATH")[0]
    assert death.metric("bdSeq")["value"] == host.of("NBIRTH")[0].metric("bdSeq")["value"]
    assert host.messages[-1] is death


def _summary(signal: str, start: float, end: float, last: float | None) -> TelemetrySummary:
    return TelemetrySummary(signal, "press1", start, end, 1, 0, last, last, last, last)


async def test_backfill_after_outage_in_order_live_not_behind(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """After an outage: births, then the backlog with is_historical in order; a live change
    made while the backlog drains is published before the backlog ends; a window the live
    path covered is not sent again; alerts become Alert metrics."""
    proxy = Proxy(broker.port)
    await proxy.start()
    outbox = _outbox(tmp_path)
    sink = _sink(proxy.port, tmp_path, batch_size=20)
    async with host_on(broker.port) as host, delivering(outbox, sink, "spark") as wake:
        await host.until(_births(1))
        covered = _summary("plc.temp", time.time(), time.time() + 0.2, -1.0)
        await asyncio.sleep(0.3)
        outbox.put_telemetry([covered], "gw1", ["spark"])  # the live path told the host
        wake.set()
        await drained(outbox, "spark")
        await proxy.stop()  # the outage starts
        down = time.time()
        windows = [(down + 0.001 * n, down + 0.001 * (n + 1)) for n in range(600)]
        backlog = [_summary("plc.temp", s, e, float(n)) for n, (s, e) in enumerate(windows)]
        outbox.put_telemetry(backlog, "gw1", ["spark"])
        outbox.put_alerts([make_alert(1, asset="press1")], "gw1")
        await asyncio.sleep(1.0)
        proxy.accepting = True
        await proxy.start(proxy.port)  # the broker is back
        await host.until(lambda h: any(m.payload["metrics"][0].get("is_historical")
                                       for m in h.of("DDATA")))  # fmt: skip
        sink.on_samples([Sample("plc.speed", time.time(), 5.0, Quality.GOOD)])
        wake.set()
        await host.until(lambda h: sum(len(m.payload["metrics"]) for m in h.of("DDATA")) >= 611)
        await drained(outbox, "spark")
    after = host.messages[host.messages.index(host.of("NBIRTH")[1]) :]
    assert [m.kind for m in after[:3]] == ["NBIRTH", "DBIRTH", "DBIRTH"]
    data = [m for m in after if m.kind == "DDATA"]
    alert = data[0]  # alerts leave the outbox before telemetry
    assert (
        alert.metric("Alert/State")["value"] == "raised" and alert.metric("Alert/Active")["value"]
    )
    history = [m for d in data for m in d.payload["metrics"] if m.get("is_historical")]
    assert [m["value"] for m in history] == [float(n) for n in range(600)]  # in order, none -1
    assert all(m["name"] == "plc/temp" for m in history)
    live_at = next(i for i, d in enumerate(data) if d.payload["metrics"][0]["name"] == "plc/speed")
    last_history = max(
        i for i, d in enumerate(data) if d.payload["metrics"][0].get("is_historical")
    )
    assert live_at < last_history, "the live value waited for the whole backlog"
    await proxy.stop()


@pytest.mark.parametrize("bad", [{"servers": []}, {"group_id": "a/b"}, {"deadbands": {"x": -1.0}},
                                 {"servers": ["mqtts://h:1"]}])  # fmt: skip
def test_config_refuses(tmp_path: Path, bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _config(1883, tmp_path, **bad)


class _RacingSession:
    """Stands in for the session under the live loop: its first publish comes with the stop."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.topics: list[str] = []
        self.stop: Callable[[], object] = lambda: None

    def topic(self, kind: str, device: str = "") -> str:
        return f"{kind}/{device}"

    async def publish(self, topic: str, metrics: list[MetricValue], birth: bool = False,
                      first: bool = False) -> None:  # fmt: skip
        self.topics.append(topic)
        if len(self.topics) == 1:  # once: a second cancel still ends a failing test
            await answer_with_the_stop(self.stop)


async def test_a_stop_swallowed_by_a_live_publish_ends_the_live_loop(tmp_path: Path) -> None:
    """aiomqtt's publish waits with wait_for (3.11): the loop then waited for changes forever,
    and the sink's exit, which awaits it, with it."""
    sink = _sink(1883, tmp_path)
    sink.devices.born.add("press1")
    sink._pending = {"press1": [MetricValue("temp", DOUBLE, 1.0, time.time())]}
    sink._wake.set()
    session = _RacingSession()
    task = asyncio.create_task(sink._live_forever(session))  # type: ignore[arg-type]
    session.stop = task.cancel
    done, _ = await asyncio.wait([task], timeout=2.0)
    task.cancel()  # a second cancel is not swallowed: the test ends either way
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert session.topics
    assert done, "the live loop ran on after a publish swallowed the stop"
