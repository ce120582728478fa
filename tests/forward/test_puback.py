"""A publish the broker refuses (mosquitto ACL) is not counted as delivered."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from edge_agent.forward.config import MqttSinkConfig, OutboxConfig
from edge_agent.forward.delivery import LinkState
from edge_agent.forward.mqtt import MqttSink
from edge_agent.forward.outbox import Outbox
from edge_agent.forward.puback import PubackWatch
from tests.forward.conftest import ACL_ALL, Mosquitto
from tests.forward.factory import make_alert
from tests.forward.harness import Received, delivering, drained, subscriber

ALERTS = "edge-agent/gw1/alerts/press1"


def _sink(port: int, protocol: str) -> MqttSink:
    config = MqttSinkConfig.model_validate(
        {
            "type": "mqtt",
            "name": "cloud",
            "host": "127.0.0.1",
            "port": port,
            "tls": "off",
            "protocol": protocol,
            "username": "gateway",
            "password": "s3cret",
            "backoff": "50ms",
            "backoff_max": "200ms",
            "batch_size": 2,
        }
    )
    return MqttSink(config, gateway="gw1")


def _outbox(tmp_path: Path) -> Outbox:
    return Outbox.open(tmp_path / "outbox.db", OutboxConfig(), ["cloud"])


def _states(got: Received) -> list[str]:
    return [p["state"] for p in got.of("status")]


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def test_mqtt5_refused_alerts_stay_in_the_outbox_until_the_acl_allows_them(
    tmp_path: Path, acl_broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.forward")
    outbox = _outbox(tmp_path)
    alerts = [make_alert(i) for i in range(5)]
    outbox.put_alerts(alerts, "gw1")
    state = LinkState()
    async with (
        subscriber(acl_broker.port, "edge-agent/gw1/#") as got,
        delivering(outbox, _sink(acl_broker.port, "5"), "cloud", state) as wake,
    ):
        wake.set()
        # Each attempt connects anew and says "online": three of them, three refusals.
        await got.until(lambda g: _states(g).count("online") >= 3)
        assert got.of("alert") == []
        assert outbox.status().rows("cloud", "alert") == 5
        assert "0x87 Not authorized on topic " + ALERTS in state.last_error
        [line] = _lines(caplog, "0x87")  # once for the outage, not once per attempt
        assert "upstream refuses our messages" in line and ALERTS in line
        # ERROR, not an outage's WARNING: only a change upstream ends it.
        assert [r.levelno for r in caplog.records if "0x87" in r.getMessage()] == [logging.ERROR]

        (acl_broker.folder / "acl").write_text(ACL_ALL)
        acl_broker.reload()
        await got.until(lambda g: len({p["event_id"] for p in g.of("alert")}) >= 5)
        await drained(outbox, "cloud")
    # A batch may be refused in part while the ACL changes: it is sent again whole.
    assert {p["event_id"] for p in got.of("alert")} == {f"{a.id}:{a.state}" for a in alerts}
    assert len(_lines(caplog, "0x87")) == 1
    assert len(_lines(caplog, "delivering again after")) == 1


async def test_mqtt311_cannot_see_a_refusal_so_the_alert_counts_as_delivered(
    tmp_path: Path, acl_broker: Mosquitto
) -> None:
    """The stated limit: a 3.1.1 PUBACK has no reason code and mosquitto sends a plain one."""
    outbox = _outbox(tmp_path)
    outbox.put_alerts([make_alert(1)], "gw1")
    async with subscriber(acl_broker.port, "edge-agent/gw1/#") as got:
        async with delivering(outbox, _sink(acl_broker.port, "3.1.1"), "cloud") as wake:
            wake.set()
            await drained(outbox, "cloud")  # acked, though the broker dropped it
        # "offline" follows the alert on the same connection: had the alert passed, it
        # would have reached the subscriber before.
        await got.until(lambda g: "offline" in _states(g))
    assert got.of("alert") == []


def test_an_aiomqtt_without_its_paho_client_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    watch = PubackWatch("cloud")
    stand_in: Any = object()  # what an aiomqtt that moved its paho client looks like here
    assert watch.attach(stand_in) is False
    assert watch.attach(stand_in) is False
    [line] = _lines(caplog, "refuses")
    assert line.startswith("cloud: ") and "count as delivered" in line
