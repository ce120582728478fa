"""Secrets never reach the log: the real `edge-agent run`, every kind of secret at once.

README "Configuration": "Secrets (passwords, tokens) are kept as secret values and never
logged." The unit tests check each redaction alone; this one runs the service as systemd
would, with an MQTT password the broker refuses (the refusal is logged, again and again),
an HTTP token and header that the receiver echoes in its refusal, a web token, a SIGHUP
reload that changes the password, and the operator commands beside it, at the default
level and at ``--log-level debug`` (where library loggers are shown untouched).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.forward.config import OutboxConfig
from edge_agent.forward.outbox import Outbox
from tests.conftest import free_port
from tests.forward.conftest import Mosquitto
from tests.forward.factory import make_alert
from tests.forward.https_server import http_receiver

pytestmark = pytest.mark.faults

SECRETS = {
    "MQTT_PW": "mqtt-Pw-7f3a9e",
    "MQTT_PW2": "mqtt-Pw2-0b4c1d",
    "CMMS_TOKEN": "cmms-Tok-5e1d77",
    "CMMS_KEY": "hdr-Val-2c8b66",
    "WEB_TOKEN": "web-Tok-4a6f22",
    "CMMS_QUERY": "query-Key-9d3e55",  # a webhook key in the URL's query string
}


def _config(folder: Path, broker: int, url: str, password: str, web: int) -> Path:
    data: dict[str, Any] = {
        "agent": {"id": "gw-sec", "data_dir": str(folder / "data")},
        "web": {"listen": f"127.0.0.1:{web}", "token": "${WEB_TOKEN}"},
        "sinks": [
            {"type": "mqtt", "name": "cloud", "host": "127.0.0.1", "port": broker, "tls": "off",
             "username": "gateway", "password": password, "backoff": "100ms",
             "backoff_max": "200ms"},
            {"type": "http", "name": "cmms", "url": url, "token": "${CMMS_TOKEN}",
             "headers": {"X-Key": "${CMMS_KEY}"}, "backoff": "100ms", "backoff_max": "200ms"},
        ],
    }  # fmt: skip
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _wait(predicate: Any, what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"no {what}"
        time.sleep(0.1)


def _api_config(port: int, token: str) -> str:
    """The effective config as the page shows it (API, with the web token)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/config",
                                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    _wait(lambda: _listening(port), "web server")
    with urllib.request.urlopen(request, timeout=10) as reply:
        text: str = reply.read().decode()
    assert '"cloud"' in text and '"cmms"' in text  # the sinks are there, redacted
    return text


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("level", ["info", "debug"])
def test_no_secret_reaches_the_log(tmp_path: Path, auth_broker: Mosquitto, level: str) -> None:
    env = {**os.environ, **SECRETS}
    (tmp_path / "data").mkdir()
    outbox = Outbox.open(tmp_path / "data" / "outbox.db", OutboxConfig(), ["cloud", "cmms"])
    outbox.put_alerts([make_alert(1)], "gw-sec")
    outbox.close()
    echo = json.dumps({"error": "who are you", "got": {"Authorization": SECRETS["CMMS_TOKEN"],
                                                       "X-Key": SECRETS["CMMS_KEY"]}})  # fmt: skip
    log = tmp_path / "stderr.log"
    with http_receiver("/hook") as receiver, log.open("w") as err:
        receiver.plan.append((401, 0.0, echo))
        web = free_port()
        url = receiver.url + "?key=${CMMS_QUERY}"
        config = _config(tmp_path, auth_broker.port, url, "${MQTT_PW}", web)
        run = [sys.executable, "-m", "edge_agent", "--log-level", level, "run", "-c", str(config)]
        agent = subprocess.Popen(run, stderr=err, stdout=err, env=env)
        try:
            _wait(lambda: "HTTP 401" in log.read_text(), "HTTP refusal logged")
            _wait(lambda: "authori" in log.read_text().lower(), "MQTT refusal logged")
            outputs_api = _api_config(web, SECRETS["WEB_TOKEN"])
            _config(tmp_path, auth_broker.port, url, "${MQTT_PW2}", web)
            agent.send_signal(signal.SIGHUP)
            _wait(lambda: "sink cloud changed" in log.read_text(), "reload line")
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(timeout=15) == 0
        finally:
            agent.kill()
    assert receiver.requests[0][0]["authorization"] == f"Bearer {SECRETS['CMMS_TOKEN']}"
    outputs = {"run": log.read_text(), "GET /api/v1/config": outputs_api}
    for command in (["check-config"], ["status"], ["outbox", "status"], ["alerts", "--all"]):
        done = subprocess.run([sys.executable, "-m", "edge_agent", *command, "-c", str(config)],
                              capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
        outputs[" ".join(command)] = done.stdout + done.stderr
    for name, text in outputs.items():
        for key, secret in SECRETS.items():
            if (name, key, level) == ("run", "CMMS_QUERY", "debug"):
                # README "Logs": debug shows library lines untouched, httpx's request
                # line with its query string among them; the declared secrets still not.
                continue
            assert secret not in text, f"{key} in the output of {name}:\n{text}"
    assert "Traceback" not in outputs["run"]


def test_a_secret_put_in_the_wrong_field_is_not_echoed(tmp_path: Path) -> None:
    """A `${VAR}` may hold a secret whatever field it lands in (a slip of the line)."""
    path = tmp_path / "agent.yaml"
    path.write_text("sinks:\n  - type: mqtt\n    name: m\n    host: 127.0.0.1\n"
                    "    keepalive: ${MQTT_PW}\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "edge_agent", "check-config", "-c", str(path)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **SECRETS})  # fmt: skip
    assert done.returncode == 78 and "keepalive" in done.stderr, done.stderr
    assert SECRETS["MQTT_PW"] not in done.stderr, done.stderr


def test_a_secret_with_quotes_in_the_wrong_field_is_not_echoed(tmp_path: Path) -> None:
    """repr() escapes a quote or a backslash: the escaped form is hidden too."""
    path = tmp_path / "agent.yaml"
    path.write_text("sinks:\n  - type: mqtt\n    name: m\n    host: 127.0.0.1\n"
                    "    keepalive: ${ODD_PW}\n")  # fmt: skip
    secret = "it's\\a-secret"
    done = subprocess.run([sys.executable, "-m", "edge_agent", "check-config", "-c", str(path)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ODD_PW": secret})  # fmt: skip
    assert done.returncode == 78 and "${ODD_PW}" in done.stderr, done.stderr
    assert "a-secret" not in done.stderr, done.stderr
