"""One dead Modbus unit through the real agent: no frame dumps, one line per transition.

Before the translation at the boundary, 21 s of this gave 71 lines, most of them
pymodbus ERROR lines each followed by raw frame dumps (``>>>>> send: 0x0 0x1 ...``).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]
SECONDS = 8.0


def _config(folder: Path, port: int) -> Path:
    registers = [
        {"name": "a", "address": 0, "data_type": "int16", "device_id": 1},
        {"name": "b", "address": 0, "data_type": "int16", "device_id": 2},
    ]
    data = {
        "agent": {"id": "gw", "data_dir": str(folder / "data")},
        "detect": {"interval": "250ms", "rules": []},
        "sources": [
            {"type": "modbus", "name": "plc", "url": f"tcp://127.0.0.1:{port}",
             "interval": "200ms", "timeout": "300ms", "registers": registers}
        ],
        "sinks": [{"type": "jsonl", "name": "local", "path": "alerts.jsonl"}],
    }  # fmt: skip
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_dead_unit_gives_transitions_not_frame_dumps(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.sources.modbus.peer_main", str(port), "--silent", "2"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    log = tmp_path / "stderr.log"
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        with log.open("w") as err:
            agent = subprocess.Popen(
                [sys.executable, "-m", "edge_agent", "run", "-c", str(_config(tmp_path, port))],
                stderr=err,
            )
            time.sleep(SECONDS)
            agent.send_signal(signal.SIGINT)
            assert agent.wait(timeout=20) == 0
    finally:
        server.kill()
        server.wait()
    lines = log.read_text().splitlines()
    assert any("unit 2 not answering" in line for line in lines), lines
    assert not any(">>>>>" in line or "0x0 " in line for line in lines), lines
    assert len([line for line in lines if "pymodbus" in line]) <= 2, lines
    assert len(lines) <= 10 and "Traceback" not in log.read_text(), lines
