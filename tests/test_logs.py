"""Logs journald and people can use: priorities, libraries translated, a rate bound per source."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from edge_agent.logs import RateLimitedLog, Transition, redact_urls
from tests.conftest import free_port

STAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")
JOURNAL_LINE = re.compile(r"^<([0-7])>(DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: ")


class Clock:
    """A hand-moved monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lines(agent_log: io.StringIO) -> io.StringIO:
    """What the agent's stderr handler wrote."""
    return agent_log


def test_rate_limited_log_sums_up_a_flapping_source(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="t")
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("t"), "vib1", burst=3, period=60.0, clock=clock)
    for i in range(1843):
        limited.count("bad frames")
        limited.log(logging.WARNING if i % 2 else logging.INFO, "vib1: flap %d", i)
        clock.now += 0.01
    assert len(caplog.records) == 3
    clock.now += 60
    limited.count("bad frames")
    last = caplog.records[-1]
    assert len(caplog.records) == 4 and last.levelno == logging.WARNING
    assert last.getMessage().startswith("vib1: 1,840 bad frames in the last 78 s")
    assert "1,840 more lines held back" in last.getMessage()


def test_rate_limited_log_is_quiet_for_a_single_transition(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="t")
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("t"), "vib1", clock=clock)
    limited.count("bad frames")
    limited.log(logging.WARNING, "vib1: unreadable")
    clock.now += 600
    limited.log(logging.INFO, "vib1: readable again")
    assert [r.getMessage() for r in caplog.records] == ["vib1: unreadable", "vib1: readable again"]


def test_urls_lose_credentials_and_query_strings() -> None:
    text = "POST https://bob:s3cret@hooks.example:8443/a/b?token=abc#frag failed; http://h/x?k=v"
    assert redact_urls(text) == "POST https://hooks.example:8443/a/b failed; http://h/x"


class _Quiet(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_httpx_request_lines_never_reach_the_log(lines: io.StringIO) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook?key=TOPSECRET"
        assert httpx.get(url).status_code == 204
    finally:
        server.shutdown()
    assert "TOPSECRET" not in lines.getvalue() and "HTTP Request" not in lines.getvalue()


async def test_pymodbus_failures_become_one_short_line(lines: io.StringIO) -> None:
    from pymodbus.client import AsyncModbusTcpClient

    for _ in range(5):
        client = AsyncModbusTcpClient("127.0.0.1", port=free_port(), timeout=0.2, retries=0)
        assert not await client.connect()
        client.close()
    library = [line for line in lines.getvalue().splitlines() if "pymodbus" in line]
    assert 1 <= len(library) <= 2, lines.getvalue()  # "Failed to connect" (+ its "Repeating")
    assert "Traceback" not in lines.getvalue()


def test_library_traceback_is_condensed(lines: io.StringIO) -> None:
    try:
        raise ConnectionResetError("peer gone at opc.tcp://u:p@10.0.0.5:4840/x?s=1")
    except ConnectionResetError:
        logging.getLogger("asyncua.client.ua_client").exception("Error in watchdog loop\nframe")
    assert lines.getvalue().count("\n") == 1, lines.getvalue()
    assert "WARNING asyncua.client.ua_client: Error in watchdog loop (ConnectionResetError: " in (
        lines.getvalue()
    )
    assert "opc.tcp://10.0.0.5:4840/x)" in lines.getvalue() and "Traceback" not in lines.getvalue()


# -- the real agent --------------------------------------------------------------


def _dead_modbus_config(folder: Path) -> Path:
    data = {
        "agent": {"id": "gw", "data_dir": str(folder / "data")},
        "detect": {"interval": "250ms", "rules": []},
        "sources": [
            {
                "type": "modbus",
                "name": "plc",
                "url": f"tcp://127.0.0.1:{free_port()}",
                "interval": "200ms",
                "registers": [{"name": "t", "address": 0, "data_type": "int16"}],
            }
        ],
        "sinks": [{"type": "jsonl", "name": "local", "path": "alerts.jsonl"}],
    }
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _run_with_stderr_pipe(config: Path, journal: bool, until: str) -> list[str]:
    """Run the agent with stderr on a pipe (JOURNAL_STREAM naming it if ``journal``), until
    it has written every text of ``until`` ("|"-separated), then Ctrl-C it."""
    read_end, write_end = os.pipe()
    stat = os.fstat(write_end)
    env = dict(os.environ)
    env["JOURNAL_STREAM"] = f"{stat.st_dev}:{stat.st_ino if journal else stat.st_ino + 1}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "run", "-c", str(config)], stderr=write_end, env=env
    )
    os.close(write_end)
    chunks: list[bytes] = []
    reader = threading.Thread(
        target=lambda: chunks.extend(iter(lambda: os.read(read_end, 65536), b""))
    )
    reader.start()
    deadline = time.monotonic() + 30
    while not all(text.encode() in b"".join(chunks) for text in until.split("|")):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"no {until!r} in {b''.join(chunks).decode()}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    reader.join(timeout=10)
    os.close(read_end)
    return b"".join(chunks).decode().splitlines()


def test_under_journald_lines_carry_priorities_and_no_timestamp(tmp_path: Path) -> None:
    config = _dead_modbus_config(tmp_path)
    out = _run_with_stderr_pipe(config, journal=True, until=" running: |connection lost")
    assert out and all(JOURNAL_LINE.match(line) for line in out), out
    assert not any(STAMP.search(line) for line in out), out
    priorities = {line[1] for line in out if "connection lost" in line or "running" in line}
    assert priorities == {"4", "6"}, out  # WARNING is 4, INFO 6: `journalctl -p warning` works


def test_elsewhere_lines_keep_their_timestamp(tmp_path: Path) -> None:
    # JOURNAL_STREAM inherited but naming another stream (stderr redirected): no prefixes.
    config = _dead_modbus_config(tmp_path)
    out = _run_with_stderr_pipe(config, journal=False, until=" running: |connection lost")
    assert out and all(STAMP.match(line) for line in out), out


def test_a_transition_is_logged_once_each_way(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    now = [100.0]
    link = Transition(logging.getLogger("edge_agent.test"), clock=lambda: now[0])
    assert not link.ok("plc: back")  # nothing failed yet: silent
    assert link.fail("plc: lost: %s", "timeout")
    now[0] = 137.0
    assert not link.fail("plc: lost: %s", "timeout")  # a repetition: silent
    assert link.failing
    assert link.ok("plc: back")
    assert not link.failing
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [("ERROR", "plc: lost: timeout"), ("WARNING", "plc: back (after 37 s)")]
