"""Operator commands that connect to nothing run without the service's secrets.

The config names its secrets as ``${VAR}`` (the unit reads them from
/etc/edge-agent/environment); an operator's shell does not have them. Each command
below reads files only (the twin, the outbox, a model, a CSV) and must work with
the variables unset; ``run`` and ``check-config``, which connect or vouch for a
config that will, still refuse.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.errors import EX_CONFIG
from edge_agent.forward.config import OutboxConfig
from edge_agent.forward.outbox import Outbox
from tests.cli.test_detect import setup
from tests.detect.test_replay import plant, write_csv

SECRETS = ("EDGE_AGENT_TEST_MQTT_HOST", "EDGE_AGENT_TEST_MQTT_PASSWORD", "EDGE_AGENT_TEST_TOKEN")
SINKS = """sinks:
  - type: mqtt
    name: broker
    host: ${EDGE_AGENT_TEST_MQTT_HOST}
    username: gw
    password: ${EDGE_AGENT_TEST_MQTT_PASSWORD}
  - type: http
    name: cmms
    url: https://cmms.plant.example/hook?token=${EDGE_AGENT_TEST_TOKEN}
"""


def edge_agent(*args: str) -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it: a shell without the service's environment."""
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with a twin, an outbox and a model; a config whose sinks need secrets."""
    folder = tmp_path_factory.mktemp("offline")
    config, _ = setup(folder, 400)
    config.write_text(config.read_text() + SINKS)
    outbox = Outbox.open(folder / "outbox.db", OutboxConfig(), ["broker", "cmms"])
    outbox.close()
    write_csv(folder / "history.csv", plant())
    return config


@pytest.mark.parametrize(
    "command",
    [
        ["twin", "status"],
        ["twin", "export", "--signal", "pump.temp", "--since", "1h"],
        ["twin", "plot", "--signal", "pump.temp", "--since", "1h", "--out", "{dir}/t.png"],
        ["outbox", "status"],
        ["calibrate", "--asset", "pump", "--dry-run"],
        ["rebaseline", "--asset", "pump", "--dry-run", "--force"],
        ["replay", "--asset", "pump", "--data", "{dir}/history.csv", "--out", "{dir}/o.csv"],
        ["status"],
        ["alerts"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_runs_without_the_services_secrets(site: Path, command: list[str]) -> None:
    argv = [part.replace("{dir}", str(site.parent)) for part in command]
    result = edge_agent(*argv, "--config", str(site))
    assert result.returncode == 0, result.stderr
    assert "is not set" not in result.stderr


@pytest.mark.parametrize("command", [["check-config"], ["run", "--config"]])
def test_commands_that_connect_still_need_them(site: Path, command: list[str]) -> None:
    result = edge_agent(*command, str(site))
    assert result.returncode == EX_CONFIG
    assert "EDGE_AGENT_TEST_MQTT_PASSWORD is not set" in result.stderr


def test_a_placeholder_a_field_refuses_names_the_unset_variable(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(f"agent:\n  data_dir: {tmp_path}\ntwin:\n  max_samples: ${{{SECRETS[2]}}}\n")
    result = edge_agent("twin", "status", "--config", str(config))
    assert result.returncode == EX_CONFIG
    assert f"{config}:4: twin.max_samples" in result.stderr
    assert f"environment variable {SECRETS[2]} is not set" in result.stderr
