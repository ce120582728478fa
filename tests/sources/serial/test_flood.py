"""Garbage at full line rate through the real agent: a few lines a minute, not one per frame.

Before the rate bound, half-garbage on a pty gave 140,000 log lines in 10 s (the line
flapped between readable and unreadable on every frame).
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.sources.serial.pty_pair import VIB, Device, PtyPair

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")
SECONDS = 12.0
GOOD = b"VIB,rms=0.31,peak=1.20,temp=41.8\n"


def _config(folder: Path, port: Path) -> Path:
    data = {
        "agent": {"id": "gw", "data_dir": str(folder / "data")},
        "detect": {"interval": "250ms", "rules": []},
        "sources": [
            {"type": "serial", "name": "vib1", "port": str(port), "interval": "100ms",
             "parse": {"pattern": VIB}}
        ],
        "sinks": [{"type": "jsonl", "name": "local", "path": "alerts.jsonl"}],
    }  # fmt: skip
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _noise(rng: random.Random) -> bytes:
    """Fifty frames, about half of them random bytes: a line that flaps all the time."""
    chunk = bytearray()
    for _ in range(50):
        if rng.random() < 0.5:
            chunk += GOOD
        else:
            chunk += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60))) + b"\n"
    return bytes(chunk)


def test_garbage_at_line_rate_gives_a_few_lines_a_minute(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    with PtyPair(tmp_path) as pair, log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "-c", str(_config(tmp_path, pair.port))],
            stderr=err,  # a file, not a pipe: a flood must not block the agent on a full pipe
        )
        rng, sent = random.Random(7), 0
        with Device(pair.device) as device:
            stop = time.monotonic() + SECONDS
            while time.monotonic() < stop:
                chunk = _noise(rng)
                device.write(chunk)
                sent += chunk.count(b"\n")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    lines = log.read_text().splitlines()
    per_minute = len(lines) * 60 / SECONDS
    assert sent > 10_000  # the line really was flooded
    assert any("unreadable data on the line" in line for line in lines), lines
    assert per_minute <= 300, f"{len(lines)} lines in {SECONDS:.0f} s:\n" + "\n".join(lines[:40])
    assert not any("Traceback" in line for line in lines)
