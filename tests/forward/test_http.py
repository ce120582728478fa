"""HttpSink against a local HTTPS receiver: 200, 500, 400, timeout, wrong CA."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import parse_config
from edge_agent.errors import DeliveryError
from edge_agent.forward.config import HttpSinkConfig, OutboxConfig
from edge_agent.forward.http import HttpSink
from edge_agent.forward.outbox import Outbox
from tests.forward.conftest import Certs
from tests.forward.factory import make_alert
from tests.forward.harness import delivering, drained
from tests.forward.https_server import Receiver, https_receiver


@pytest.fixture
def receiver(certs: Certs) -> Iterator[Receiver]:
    with https_receiver(certs) as server:
        yield server


def _config(receiver: Receiver, certs: Certs, **extra: Any) -> HttpSinkConfig:
    values: dict[str, Any] = {
        "type": "http",
        "name": "cmms",
        "url": receiver.url,
        "ca_file": str(certs.ca),
        "backoff": "50ms",
        "backoff_max": "200ms",
        "batch_size": 3,
        **extra,
    }
    return HttpSinkConfig.model_validate(values)


def _outbox(tmp_path: Path) -> Outbox:
    return Outbox.open(tmp_path / "outbox.db", OutboxConfig(), ["cmms"])


async def test_batches_are_posted_with_token_and_headers_from_env(
    tmp_path: Path, receiver: Receiver, certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CMMS_TOKEN", "s3cret")
    monkeypatch.setenv("CMMS_TENANT", "plant-7")
    text = (
        f"sinks:\n  - type: http\n    name: cmms\n    url: {receiver.url}\n"
        f"    ca_file: {certs.ca}\n    token: ${{CMMS_TOKEN}}\n"
        "    headers: {X-Tenant: '${CMMS_TENANT}'}\n    batch_size: 3\n"
    )
    config = parse_config(text, tmp_path / "agent.yaml").sinks[0]
    assert "s3cret" not in repr(config)
    outbox = _outbox(tmp_path)
    alerts = [make_alert(i) for i in range(7)]
    outbox.put_alerts(alerts, "gw1")
    sink = HttpSink(config, gateway="gw1")  # type: ignore[arg-type]
    async with delivering(outbox, sink, "cmms") as wake:
        wake.set()
        await drained(outbox, "cmms")
    headers = receiver.requests[0][0]
    assert headers["authorization"] == "Bearer s3cret"
    assert headers["x-tenant"] == "plant-7"
    assert headers["content-type"] == "application/json"
    assert headers["x-edge-agent-gateway"] == "gw1"
    assert [len(body["items"]) for _, body in receiver.requests] == [3, 3, 1]
    assert [i["id"] for i in receiver.items()] == [a.id for a in alerts]


async def test_5xx_keeps_the_batch_and_retries(
    tmp_path: Path, receiver: Receiver, certs: Certs
) -> None:
    receiver.plan.extend([(500, 0.0, "busy"), (503, 0.0, "busy")])
    outbox = _outbox(tmp_path)
    outbox.put_alerts([make_alert(1), make_alert(2)], "gw1")
    async with delivering(outbox, HttpSink(_config(receiver, certs)), "cmms") as wake:
        wake.set()
        await drained(outbox, "cmms")
    assert receiver.answered == [500, 503, 200]
    assert [i["cause"] for _, b in receiver.requests for i in b["items"]] == ["rule1", "rule2"] * 3
    assert "rejected" not in outbox.status().counters.get("cmms", {})


async def test_408_and_429_keep_the_batch_and_retry(
    tmp_path: Path, receiver: Receiver, certs: Certs
) -> None:
    """A receiver that is busy (429 Too Many Requests) or slow (408) loses nothing."""
    receiver.plan.extend([(429, 0.0, "slow down"), (408, 0.0, "too slow")])
    outbox = _outbox(tmp_path)
    outbox.put_alerts([make_alert(1), make_alert(2)], "gw1")
    async with delivering(outbox, HttpSink(_config(receiver, certs)), "cmms") as wake:
        wake.set()
        await drained(outbox, "cmms")
    assert receiver.answered == [429, 408, 200]
    assert [i["cause"] for i in receiver.items()] == ["rule1", "rule2"]
    assert "rejected" not in outbox.status().counters.get("cmms", {})


async def test_4xx_rejects_counts_and_logs_the_body(
    tmp_path: Path, receiver: Receiver, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.plan.append((400, 0.0, '{"error": "asset unknown"}'))
    outbox = _outbox(tmp_path)
    outbox.put_alerts([make_alert(i) for i in range(5)], "gw1")
    with caplog.at_level(logging.ERROR):
        async with delivering(outbox, HttpSink(_config(receiver, certs)), "cmms") as wake:
            wake.set()
            await drained(outbox, "cmms")
    assert outbox.status().counters["cmms"]["rejected"] == 3
    assert [i["cause"] for i in receiver.items()] == ["rule3", "rule4"]
    assert "HTTP 400" in caplog.text and "asset unknown" in caplog.text


async def test_timeout_keeps_the_batch(tmp_path: Path, receiver: Receiver, certs: Certs) -> None:
    receiver.plan.append((200, 1.0, "slow"))
    outbox = _outbox(tmp_path)
    outbox.put_alerts([make_alert(1)], "gw1")
    sink = HttpSink(_config(receiver, certs, timeout="200ms"))
    async with delivering(outbox, sink, "cmms") as wake:
        wake.set()
        await drained(outbox, "cmms")
    assert receiver.answered[0] == 0  # the slow answer came after the client gave up
    assert [i["cause"] for i in receiver.items()] == ["rule1"]


async def test_wrong_ca_is_a_clear_error(receiver: Receiver, certs: Certs) -> None:
    sink = HttpSink(_config(receiver, certs, ca_file=str(certs.other_ca)))
    async with sink:
        with pytest.raises(DeliveryError, match=r"server certificate not trusted by .*other\.crt"):
            await sink.send([])


def test_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="https://"):
        HttpSinkConfig(type="http", name="x", url="ftp://host/")
