"""``edge-agent status`` and ``edge-agent alerts`` beside a running agent, without its secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.web.conftest import SiteAgent, site, wait_for

__all__ = ["site"]  # the fixture, shared with tests/web


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    # The agent's token comes from $SITE_TOKEN: this shell does not have it.
    env = {k: v for k, v in os.environ.items() if k != "SITE_TOKEN"}
    command = [sys.executable, "-m", "edge_agent", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def status_json(site: SiteAgent) -> Any:
    result = cli("status", "--config", str(site.folder / "config.yaml"), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_status_reads_the_data_folder(site: SiteAgent) -> None:
    data = status_json(site)
    assert data["agent"] == "site-test"
    (pump,) = data["sources"]
    assert (pump["name"], pump["state"], pump["stale"]) == ("pump1", "receiving", 0)
    assert pump["link"] == "up"  # the poll loop's link.pump1 signal, read from the twin
    assert pump["signals"] == 7
    assert [s["name"] for s in data["sinks"]] == ["local"]
    text = cli("status", "--data-dir", str(site.folder))
    assert text.returncode == 0 and "pump1" in text.stdout and "receiving" in text.stdout


def test_alerts_open_then_history(site: SiteAgent) -> None:
    config = str(site.folder / "config.yaml")
    assert cli("alerts", "--config", config).stdout.strip() == "no open alerts"
    site.fault(True)
    try:
        wait_for(lambda: site.get("/api/v1/alerts").json()["alerts"])
        opened = json.loads(cli("alerts", "--config", config, "--json").stdout)
        assert [(a["cause"], a["state"]) for a in opened] == [("pump1-silent", "open")]
        assert "pump1-silent" in cli("alerts", "--data-dir", str(site.folder)).stdout
        assert status_json(site)["open_alerts"][0]["id"] == opened[0]["id"]
    finally:
        site.fault(False)
    wait_for(lambda: site.get("/api/v1/alerts").json()["alerts"] == [])
    wait_for(lambda: cli("alerts", "--config", config).stdout.strip() == "no open alerts")
    history = json.loads(cli("alerts", "--all", "--config", config, "--json").stdout)
    episode = next(a for a in history if a["id"] == opened[0]["id"])
    assert episode["state"] == "cleared"
    assert episode["cleared_at"] > episode["raised_at"]
    api = site.get("/api/v1/alerts?state=all").json()["alerts"]
    assert next(a for a in api if a["id"] == episode["id"]) == episode


def test_status_reads_its_config_with_the_bounded_reader(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("agent:\n  data_dir: data\nagent:\n  data_dir: other\n")
    result = cli("status", "--config", str(config))
    assert result.returncode == 78 and "given twice" in result.stderr, result.stderr


def test_a_damaged_data_folder_is_a_sentence_not_a_traceback(tmp_path: Path) -> None:
    """Operators run `status` precisely when something is wrong: a damaged file is named."""
    cases = {"outbox.db": ["status", "alerts", "alerts --all"], "twin.db": ["status"]}
    for name, commands in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / name).write_bytes(b"SQLite format 3\x00" + os.urandom(4000))  # header kept
        for command in commands:
            result = cli(*command.split(), "--data-dir", str(folder))  # no traceback (cli)
            assert result.returncode == 73, (command, result.stderr)
            assert name in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
