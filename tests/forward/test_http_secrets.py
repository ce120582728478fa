"""Secrets stay secret: no token over plain HTTP off the machine, URLs and refusals redacted."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.errors import DeliveryError
from edge_agent.forward.config import HttpSinkConfig, OutboxConfig
from edge_agent.forward.http import HttpSink
from edge_agent.forward.outbox import Outbox
from tests.conftest import free_port
from tests.forward.factory import make_alert
from tests.forward.harness import delivering, drained
from tests.forward.https_server import http_receiver

TOKEN = "tok-9f8e7d6c5b4a"


def _check_config(tmp_path: Path, sink: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "agent.yaml"
    path.write_text(
        f"agent: {{id: gw}}\nsources: []\nsinks:\n  - type: http\n    name: cmms\n{sink}"
    )
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "CMMS_TOKEN": TOKEN},
    )


@pytest.mark.parametrize(
    ("sink", "key"),
    [
        ("    url: http://10.0.0.5/hook\n    token: ${CMMS_TOKEN}\n", "sinks[0].token"),
        ("    url: http://cmms.plant/hook\n    headers: {X-Key: abcd}\n", "sinks[0].headers"),
        ("    url: http://bob:pw@10.0.0.5/hook\n", "sinks[0].url"),
    ],
)
def test_secrets_over_plain_http_off_the_machine_exit_78(
    tmp_path: Path, sink: str, key: str
) -> None:
    done = _check_config(tmp_path, sink)
    assert done.returncode == 78, done.stderr
    line = 6 if key.endswith("url") else 7
    assert f"agent.yaml:{line}: {key}:" in done.stderr, done.stderr
    assert "clear text" in done.stderr and "Traceback" not in done.stderr
    assert TOKEN not in done.stderr and ":pw@" not in done.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.0.0.53"])
def test_a_token_over_http_to_loopback_is_allowed(tmp_path: Path, host: str) -> None:
    sink = f"    url: http://{host}:8080/hook\n    token: ${{CMMS_TOKEN}}\n"
    done = _check_config(tmp_path, sink)
    assert done.returncode == 0, done.stderr


def _outbox(tmp_path: Path) -> Outbox:
    return Outbox.open(tmp_path / "outbox.db", OutboxConfig(), ["cmms"])


def _config(url: str, **extra: object) -> HttpSinkConfig:
    values = {"type": "http", "name": "cmms", "url": url, "token": TOKEN, "batch_size": 5}
    return HttpSinkConfig.model_validate(
        values | {"backoff": "50ms", "backoff_max": "100ms"} | extra
    )


async def test_token_reaches_a_loopback_receiver_and_an_echoed_refusal_is_redacted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, agent_log: io.StringIO
) -> None:
    echoed = (
        f'{{"error": "bad asset",\n "echo": {{"Authorization": "Bearer {TOKEN}",'
        f' "X-Tenant": "plant-7-secret", "api_key": "k-123456"}},\n "pad": "{"x" * 3000}"}}'
    )
    with http_receiver("/hook?key=QUERYSECRET") as receiver:
        receiver.plan.append((400, 0.0, echoed))
        outbox = _outbox(tmp_path)
        outbox.put_alerts([make_alert(i) for i in range(3)], "gw")
        sink = HttpSink(_config(receiver.url, headers={"X-Tenant": "plant-7-secret"}))
        with caplog.at_level(logging.INFO):
            async with delivering(outbox, sink, "cmms") as wake:
                wake.set()
                await drained(outbox, "cmms")
    assert receiver.requests[0][0]["authorization"] == f"Bearer {TOKEN}"
    refusals = [r.getMessage() for r in caplog.records if "HTTP 400" in r.getMessage()]
    assert len(refusals) == 1, caplog.text
    line = refusals[0]
    assert "bad asset" in line and "***" in line and "\n" not in line
    assert len(line) < 800  # trimmed: the body was 3,000+ characters
    for secret in (TOKEN, "plant-7-secret", "k-123456", "QUERYSECRET"):
        assert secret not in caplog.text and secret not in agent_log.getvalue()
    assert "HTTP 400" in agent_log.getvalue()


async def test_urls_are_logged_without_credentials_or_query(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, agent_log: io.StringIO
) -> None:
    url = f"http://bob:pw-12345@127.0.0.1:{free_port()}/hook?key=QUERYSECRET#frag"
    sink = HttpSink(_config(url))
    async with sink:
        with pytest.raises(DeliveryError) as raised:
            await sink.send([])
    message = str(raised.value)
    assert f"POST http://127.0.0.1:{url.split(':')[3].split('/')[0]}/hook failed" in message
    outbox = _outbox(tmp_path)
    outbox.put_alerts([make_alert(1)], "gw")
    with caplog.at_level(logging.DEBUG):
        async with delivering(outbox, sink, "cmms"):
            await asyncio.sleep(0.5)
    for secret in ("pw-12345", "QUERYSECRET", "bob:", TOKEN):
        assert secret not in message and secret not in caplog.text + agent_log.getvalue()
    assert "cmms: " in agent_log.getvalue()  # the outage was logged, redacted
