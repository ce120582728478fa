"""MqttSink and deliver_forever against a real mosquitto."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from edge_agent.config import parse_config
from edge_agent.errors import DeliveryError
from edge_agent.forward.config import MqttSinkConfig, OutboxConfig
from edge_agent.forward.mqtt import MqttSink, topic_for
from edge_agent.forward.outbox import Outbox
from edge_agent.types import AlertState
from tests.forward.conftest import Certs, Mosquitto
from tests.forward.factory import make_alert, make_summary
from tests.forward.harness import Received, delivering, drained, subscriber


def _config(port: int, **extra: Any) -> MqttSinkConfig:
    values: dict[str, Any] = {
        "type": "mqtt",
        "name": "cloud",
        "host": "127.0.0.1",
        "port": port,
        "tls": "off",
        "backoff": "50ms",
        "backoff_max": "300ms",
        "batch_size": 7,
        **extra,
    }
    return MqttSinkConfig.model_validate(values)


def _outbox(tmp_path: Path, **config: Any) -> Outbox:
    return Outbox.open(tmp_path / "outbox.db", OutboxConfig.model_validate(config), ["cloud"])


def _ids(got: Received) -> set[str]:
    return {p["event_id"] for p in got.of("alert")}


def _ids_by_asset(got: Received) -> dict[str, list[str]]:
    """First delivery of each event id, in arrival order, per asset."""
    seen: set[str] = set()
    order: dict[str, list[str]] = {}
    for payload in got.of("alert"):
        if payload["event_id"] not in seen:
            seen.add(payload["event_id"])
            order.setdefault(payload["asset"], []).append(payload["event_id"])
    return order


def _expected(alerts: list[Any]) -> dict[str, list[str]]:
    expected: dict[str, list[str]] = {}
    for alert in alerts:
        expected.setdefault(alert.asset, []).append(f"{alert.id}:{alert.state}")
    return expected


def test_topic_templates() -> None:
    assert topic_for("site/{gateway}/a/{asset}", "gw.1", "line/2#") == "site/gw.1/a/line_2_"
    with pytest.raises(ValueError, match="placeholder"):
        _config(1883, topic="x/{device}")


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_alerts_reach_the_broker_on_templated_topics(
    tmp_path: Path, broker: Mosquitto, protocol: str
) -> None:
    outbox = _outbox(tmp_path)
    sink = MqttSink(_config(broker.port, protocol=protocol), gateway="gw1")
    alerts = [make_alert(i, asset=("press1", "press2")[i % 2]) for i in range(20)]
    async with subscriber(broker.port, "edge-agent/gw1/alerts/#") as got:
        outbox.put_alerts(alerts, "gw1")
        async with delivering(outbox, sink, "cloud") as wake:
            wake.set()
            await got.until(lambda g: len(g.of("alert")) >= 20)
            await drained(outbox, "cloud")
    topics = {t for t, _, _ in got.messages}
    assert topics == {"edge-agent/gw1/alerts/press1", "edge-agent/gw1/alerts/press2"}
    assert _ids_by_asset(got) == _expected(alerts)


async def test_broker_down_and_back_delivers_every_alert_in_order(
    tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent.forward")
    outbox = _outbox(tmp_path)
    sink = MqttSink(_config(broker.port), gateway="gw1")
    alerts = [make_alert(i, asset=f"press{i % 3}") for i in range(40)]
    async with (
        subscriber(broker.port, "edge-agent/+/alerts/#") as got,
        delivering(outbox, sink, "cloud") as wake,
    ):
        outbox.put_alerts(alerts[:10], "gw1")
        wake.set()
        await got.until(lambda g: len(_ids(g)) >= 10)
        broker.stop()
        for i in range(10, 40, 5):  # alerts raised while the broker is away
            outbox.put_alerts(alerts[i : i + 5], "gw1")
            wake.set()
            await asyncio.sleep(0.05)
        assert outbox.status().rows("cloud") > 0
        await asyncio.sleep(0.5)  # several failed attempts, with backoff
        broker.start()
        await got.until(lambda g: len(_ids(g)) >= 40)
        await drained(outbox, "cloud")
    assert _ids_by_asset(got) == _expected(alerts)
    # the outage is logged once, the recovery once, however many attempts failed
    messages = [r.getMessage() for r in caplog.records]
    assert sum("upstream unavailable" in m for m in messages) == 1
    assert sum("delivering again after" in m for m in messages) == 1


async def test_birth_and_clean_exit_status_are_retained(tmp_path: Path, broker: Mosquitto) -> None:
    sink = MqttSink(_config(broker.port, protocol="5"), gateway="gw1")
    async with subscriber(broker.port, "edge-agent/gw1/status") as got:
        async with sink:
            await got.until(lambda g: len(g.of("status")) >= 1)
        await got.until(lambda g: len(g.of("status")) >= 2)
    assert [p["state"] for p in got.of("status")] == ["online", "offline"]
    # a late subscriber sees the retained last state
    async with subscriber(broker.port, "edge-agent/gw1/status", client_id="late") as late:
        await late.until(lambda g: len(g.of("status")) >= 1)
    assert late.messages[0][1]["state"] == "offline"
    assert late.messages[0][2]  # retained


async def test_tiny_bound_drops_by_policy_and_announces_it(
    tmp_path: Path, broker: Mosquitto
) -> None:
    outbox = _outbox(tmp_path, max_rows=4)
    broker.stop()
    summaries = [make_summary(i, 1_700_000_000.0 + 60 * i) for i in range(3)]
    outbox.put_telemetry(summaries, "gw1", ["cloud"])
    outbox.put_alerts(
        [make_alert(0), make_alert(1, state=AlertState.CLEARED), make_alert(2)], "gw1"
    )
    broker.start()
    sink = MqttSink(_config(broker.port), gateway="gw1")
    async with subscriber(broker.port) as got, delivering(outbox, sink, "cloud") as wake:
        wake.set()
        await got.until(lambda g: len(g.of("telemetry")) >= 1)
    notice = got.of("notice")[0]
    assert notice["dropped"] == {"alert": 0, "telemetry": 2}
    assert [p["cause"] for p in got.of("alert")] == ["rule0", "rule1", "rule2"]
    telemetry = got.of("telemetry")
    assert [p["min"] for p in telemetry] == [2.0]
    assert telemetry[0]["historical"] is True
    kinds = [p["type"] for _, p, _ in got.messages if p["type"] != "status"]
    assert kinds == ["notice", "alert", "alert", "alert", "telemetry"]


def _tls_config(port: int, certs: Certs, ca: Path) -> MqttSinkConfig:
    return _config(
        port,
        host="localhost",
        tls="verify",
        ca_file=str(ca),
        cert_file=str(certs.client_cert),
        key_file=str(certs.client_key),
    )


async def test_tls_with_client_certificate(
    tmp_path: Path, tls_broker: Mosquitto, certs: Certs
) -> None:
    outbox = _outbox(tmp_path)
    outbox.put_alerts([make_alert(1)], "gw1")
    sink = MqttSink(_tls_config(tls_broker.port, certs, certs.ca), gateway="gw1")
    async with (
        subscriber(tls_broker.port, client_id="tls-sub", tls=certs) as got,
        delivering(outbox, sink, "cloud") as wake,
    ):
        wake.set()
        await got.until(lambda g: len(g.of("alert")) >= 1)
    assert got.of("alert")[0]["cause"] == "rule1"


async def test_tls_wrong_ca_is_refused_with_a_clear_error(
    tls_broker: Mosquitto, certs: Certs
) -> None:
    config = _tls_config(tls_broker.port, certs, certs.other_ca)
    with pytest.raises(DeliveryError, match=r"broker certificate not trusted by .*other\.crt"):
        async with MqttSink(config, gateway="gw1"):
            pass


async def test_tls_is_verified_by_default(tls_broker: Mosquitto) -> None:
    config = MqttSinkConfig(type="mqtt", name="cloud", host="localhost", port=tls_broker.port)
    assert config.tls == "verify"
    with pytest.raises(DeliveryError, match="not trusted by the system CA store"):
        async with MqttSink(config):
            pass


async def test_unreachable_broker_is_a_delivery_error(port: int) -> None:
    with pytest.raises(DeliveryError, match="cannot connect"):
        async with MqttSink(_config(port)):
            pass


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_username_and_password_from_the_environment(
    tmp_path: Path, auth_broker: Mosquitto, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setenv("MQTT_PASSWORD", "s3cret")
    text = (
        f"sinks:\n  - type: mqtt\n    name: cloud\n    host: 127.0.0.1\n"
        f"    port: {auth_broker.port}\n    tls: 'off'\n    protocol: '{protocol}'\n"
        "    username: gateway\n    password: ${MQTT_PASSWORD}\n"
    )
    config = parse_config(text, tmp_path / "agent.yaml").sinks[0]
    assert isinstance(config, MqttSinkConfig)
    outbox = _outbox(tmp_path)
    outbox.put_alerts([make_alert(1)], "gw1")
    async with delivering(outbox, MqttSink(config, gateway="gw1"), "cloud") as wake:
        wake.set()
        await drained(outbox, "cloud")  # acked: the broker sent its PUBACK
    wrong = config.model_copy(update={"password": SecretStr("nope")})
    with pytest.raises(DeliveryError, match=r"(?i)not authori"):
        async with MqttSink(wrong, gateway="gw1"):
            pass


async def test_prognoses_reach_the_broker_on_their_own_topic(
    tmp_path: Path, broker: Mosquitto
) -> None:
    from edge_agent.forward.encode import encode_prognosis

    outbox = _outbox(tmp_path)
    sink = MqttSink(_config(broker.port), gateway="gw1")
    body = encode_prognosis({"asset": "engine", "ts": 5.0, "method": "model", "rul": 42.5}, "gw1")
    async with subscriber(broker.port, "edge-agent/gw1/#") as got:
        outbox.put_prognoses([("engine", 5.0, body)], "gw1")
        async with delivering(outbox, sink, "cloud") as wake:
            wake.set()
            await got.until(lambda g: len(g.of("prognosis")) >= 1)
            await drained(outbox, "cloud")
    [(topic, payload)] = [(t, p) for t, p, _ in got.messages if p.get("type") == "prognosis"]
    assert topic == "edge-agent/gw1/prognosis/engine"
    assert payload["v"] == 1 and payload["rul"] == 42.5 and payload["seq"] == 1
