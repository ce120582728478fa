"""``edge-agent outbox status`` on a real outbox file."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

from edge_agent.cli.outbox import register
from edge_agent.config import load_config
from edge_agent.forward.outbox import Outbox
from tests.forward.factory import make_alert, make_summary


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "agent: {id: gw1, data_dir: data}\n"
        "outbox: {max_rows: 3}\n"
        "sinks:\n"
        "  - {type: jsonl, name: local, path: alerts.jsonl}\n"
        "  - {type: mqtt, name: cloud, host: localhost, telemetry: 'on'}\n"
    )
    return path


def test_status_shows_backlog_age_and_drops(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(config_file)
    outbox = Outbox.open(config.data_path(config.outbox.path), config.outbox, ["local", "cloud"])
    outbox.put_telemetry([make_summary(i, time.time()) for i in range(2)], "gw1", ["cloud"])
    outbox.put_alerts([make_alert(i) for i in range(2)], "gw1")
    outbox.ack("local", outbox.take("local", 1))
    assert _run(["outbox", "status", "--config", str(config_file), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["local"]["alert"]["rows"] == 1
    assert data["cloud"]["alert"]["rows"] == 2
    assert data["cloud"]["telemetry"]["rows"] == 1
    assert data["cloud"]["dropped_telemetry"] == 1
    assert data["cloud"]["alert"]["oldest_age_s"] >= 0
    assert _run(["outbox", "status", "--config", str(config_file)]) == 0
    text = capsys.readouterr().out
    assert "cloud" in text and "telemetry" in text and "dropped alerts" in text
    outbox.close()


def test_status_without_an_outbox_file(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["outbox", "status", "--config", str(config_file), "--json"]) == 0
    captured = capsys.readouterr()
    assert "no outbox" in captured.err
    assert json.loads(captured.out)["cloud"]["alert"]["rows"] == 0


def test_status_of_a_file_that_is_not_an_outbox(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = config_file.parent / "data"
    data.mkdir()
    (data / "outbox.db").write_text("not a database" * 100)
    assert _run(["outbox", "status", "--config", str(config_file)]) == 74
    assert "cannot read the outbox" in capsys.readouterr().err
