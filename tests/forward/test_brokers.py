"""Broker lists: entries parse, and a sink walks to the next broker when its broker dies."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.errors import DeliveryError
from edge_agent.forward.brokers import Broker, BrokerWalk, parse_broker
from edge_agent.forward.config import MqttSinkConfig, OutboxConfig
from edge_agent.forward.mqtt import MqttSink
from edge_agent.forward.outbox import Outbox
from edge_agent.forward.sparkplug import SparkplugSink
from edge_agent.forward.sparkplug_config import SparkplugSinkConfig
from edge_agent.types import SignalInfo
from tests.conftest import free_port
from tests.forward.conftest import Mosquitto
from tests.forward.factory import make_alert
from tests.forward.harness import delivering, drained, subscriber
from tests.forward.sparkplug_host import sparkplug_host
from tests.test_cancel import answer_with_the_stop


@pytest.mark.parametrize(
    ("entry", "tls", "expected"),
    [
        ("broker.local", False, Broker("broker.local", 1883)),
        ("10.0.0.2:1884", False, Broker("10.0.0.2", 1884)),
        ("mqtts://b.example:8884", True, Broker("b.example", 8884)),
        ("[fd00::1]:1885", False, Broker("fd00::1", 1885)),
    ],
)
def test_entries_parse(entry: str, tls: bool, expected: Broker) -> None:
    assert parse_broker(entry, 1883, tls) == expected


@pytest.mark.parametrize("entry", ["mqtt://h:1", "http://h", "h:99999", "mqtts://h/x"])
def test_bad_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        parse_broker(entry, 8883, True)


def test_mqtt_sink_takes_host_or_servers_not_both() -> None:
    base = {"type": "mqtt", "name": "cloud", "tls": "off", "port": 1883}
    assert MqttSinkConfig.model_validate({**base, "host": "b1"}).brokers() == [Broker("b1", 1883)]
    listed = MqttSinkConfig.model_validate({**base, "servers": ["b1", "b2:1884"]})
    assert listed.brokers() == [Broker("b1", 1883), Broker("b2", 1884)]
    for bad in ({}, {"host": "b1", "servers": ["b2"]}):
        with pytest.raises(ValueError, match="either host"):
            MqttSinkConfig.model_validate({**base, **bad})


async def test_a_stop_swallowed_by_a_refused_connect_ends_the_walk() -> None:
    """aiomqtt's wait_for for the CONNACK can eat the stop (3.11): the next broker is not tried."""
    tried: list[Broker] = []

    async def connect(broker: Broker) -> None:
        tried.append(broker)
        try:
            await answer_with_the_stop(walking.cancel, ConnectionRefusedError("refused"))
        except OSError as exc:
            raise DeliveryError(f"cannot connect to {broker}: {exc}") from exc

    walk = BrokerWalk([Broker("b1", 1883), Broker("b2", 1883)])
    walking = asyncio.create_task(walk.first_that_connects(connect))
    await asyncio.wait([walking], timeout=10)
    assert walking.cancelled(), "the walk went on to the next broker after the stop"
    assert tried == [Broker("b1", 1883)]


@pytest.fixture
def two_brokers(tmp_path: Path) -> Iterator[tuple[Mosquitto, Mosquitto]]:
    """Two independent mosquittos (a cluster without bridging: the worst case)."""
    pair = []
    for name in ("a", "b"):
        folder = tmp_path / f"broker-{name}"
        folder.mkdir()
        folder.chmod(0o755)
        pair.append(Mosquitto(folder, free_port()))
        pair[-1].start()
    yield pair[0], pair[1]
    for broker in pair:
        broker.stop()


def _kill(broker: Mosquitto) -> None:
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGKILL)
    broker.proc.wait(10)
    broker.proc = None


def _common(first: Mosquitto, second: Mosquitto) -> dict[str, Any]:
    return {
        "servers": [f"127.0.0.1:{first.port}", f"mqtt://127.0.0.1:{second.port}"],
        "tls": "off", "backoff": "50ms", "backoff_max": "300ms", "timeout": "2s",
    }  # fmt: skip


async def test_mqtt_sink_walks_to_the_next_broker(
    tmp_path: Path, two_brokers: tuple[Mosquitto, Mosquitto]
) -> None:
    first, second = two_brokers
    config = MqttSinkConfig.model_validate(
        {"type": "mqtt", "name": "cloud", **_common(first, second)}
    )
    outbox = Outbox.open(tmp_path / "outbox.db", OutboxConfig(), ["cloud"])
    sink = MqttSink(config, gateway="gw1")
    async with (
        subscriber(first.port, "edge-agent/#", "sub-a") as on_first,
        subscriber(second.port, "edge-agent/#", "sub-b") as on_second,
        delivering(outbox, sink, "cloud") as wake,
    ):
        outbox.put_alerts([make_alert(0)], "gw1")
        wake.set()
        await on_first.until(lambda got: len(got.of("alert")) == 1)
        await drained(outbox, "cloud")
        _kill(first)
        outbox.put_alerts([make_alert(n) for n in range(1, 6)], "gw1")
        wake.set()
        await on_second.until(lambda got: len(got.of("alert")) >= 5)
        await drained(outbox, "cloud")
    assert {p["cause"] for p in on_second.of("alert")} == {f"rule{n}" for n in range(1, 6)}


async def test_sparkplug_sink_walks_to_the_next_broker(
    tmp_path: Path, two_brokers: tuple[Mosquitto, Mosquitto]
) -> None:
    first, second = two_brokers
    config = SparkplugSinkConfig.model_validate(
        {
            "type": "sparkplug",
            "name": "spark",
            "group_id": "plant",
            "state_file": str(tmp_path / "bdseq.json"),
            **_common(first, second),
        }
    )
    sink = SparkplugSink(config, gateway="gw1")
    sink.describe([SignalInfo("plc.temp", "plc", 1.0, asset="press1")])
    outbox = Outbox.open(tmp_path / "outbox.db", OutboxConfig(), ["spark"])
    async with (
        sparkplug_host(first.port) as on_first,
        sparkplug_host(second.port) as on_second,
        delivering(outbox, sink, "spark"),
    ):
        await on_first.until(lambda h: len(h.of("DBIRTH")) == 1)
        _kill(first)
        await on_second.until(lambda h: len(h.of("DBIRTH")) == 1)
    born_first = on_first.of("NBIRTH")[0].metric("bdSeq")["value"]
    assert on_second.of("NBIRTH")[0].metric("bdSeq")["value"] > born_first
