"""The service's own hygiene: SIGHUP keeps it running, data files 0640, secret files checked."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml


def _config(folder: Path, sinks: list[dict[str, object]] | None = None) -> Path:
    raw = {
        "agent": {"id": "gw", "data_dir": str(folder / "data")},
        "twin": {"flush_interval": "200ms"},
        "detect": {"interval": "250ms", "rules": []},
        "sources": [],
        "sinks": sinks or [{"type": "jsonl", "name": "local", "path": "alerts.jsonl"}],
    }
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as err:
        # The usual interactive umask (022): the agent must tighten it itself.
        return subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "-c", str(config)], stderr=err, umask=0o022
        )


def _wait_for(
    log: Path, needle: str, proc: subprocess.Popen[bytes], within: float = 20, times: int = 1
) -> None:
    deadline = time.monotonic() + within
    while log.read_text().count(needle) < times:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_sighup_reloads_and_the_agent_keeps_running(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    proc = _start(_config(tmp_path), log)
    _wait_for(log, "running", proc)
    proc.send_signal(signal.SIGHUP)
    _wait_for(log, "SIGHUP", proc)
    proc.send_signal(signal.SIGHUP)
    # Each reload parses in a new interpreter (0.5-0.8 s on a slow machine): wait for both.
    _wait_for(log, "reloaded: no change", proc, times=2)  # tests/test_reload.py: changes
    assert proc.poll() is None, log.read_text()  # HUP's default would have ended it
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    assert log.read_text().count("reloaded: no change") == 2


def test_data_files_are_not_readable_by_others(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    proc = _start(_config(tmp_path), log)
    _wait_for(log, "running", proc)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    data = tmp_path / "data"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}
    assert {"twin.db", "outbox.db", "alerts.jsonl"} <= modes.keys()
    too_open = {name: f"{mode:04o}" for name, mode in modes.items() if mode & 0o027}
    assert not too_open, too_open  # files 0640, folders 0750 at most


def _tls_sink(folder: Path, key_mode: int) -> list[dict[str, object]]:
    key, cert = folder / "client.key", folder / "client.crt"
    key.write_text("not really a key\n")
    cert.write_text("not really a certificate\n")
    key.chmod(key_mode)
    sink: dict[str, object] = {"type": "mqtt", "name": "broker", "host": "127.0.0.1"}
    sink["cert_file"] = str(cert)
    return [sink | {"key_file": str(key)}]


@pytest.mark.parametrize(("mode", "code"), [(0o644, 78), (0o604, 78), (0o660, 78), (0o640, 0)])
def test_secret_files_open_to_others_are_refused(tmp_path: Path, mode: int, code: int) -> None:
    config = _config(tmp_path, _tls_sink(tmp_path, mode))
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "check-config", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == code, done.stderr
    if code:
        assert "sinks[0].key_file" in done.stderr and f"{mode:04o}" in done.stderr
        assert "Traceback" not in done.stderr


def test_the_agent_refuses_them_too(tmp_path: Path) -> None:
    config = _config(tmp_path, _tls_sink(tmp_path, 0o644))
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 78 and "chmod o-rwx" in done.stderr, done.stderr
    assert not os.path.exists(tmp_path / "data")  # refused before anything was opened
