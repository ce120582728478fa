"""Fixtures of the site view's tests: a running agent on the simulated plant, an HTTP client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web"
TOKEN = "site-test-token-5b1f"


@dataclass
class Reply:
    """An HTTP answer: status, headers (lowercased names), body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class SiteAgent:
    """The agent process: its URL, data folder and process (for the fault signals)."""

    url: str
    folder: Path
    proc: subprocess.Popen[str]
    token: str | None

    def get(
        self, path: str, token: str | None = "", headers: dict[str, str] | None = None
    ) -> Reply:
        """GET ``path``; ``token=""`` sends the agent's own token, None sends none."""
        sent = dict(headers or {})
        use = self.token if token == "" else token
        if use is not None:
            sent["Authorization"] = f"Bearer {use}"
        return fetch(self.url.rstrip("/") + path, sent)

    def fault(self, on: bool) -> None:
        """Take the plant's Modbus server offline (on) or bring it back."""
        self.proc.send_signal(signal.SIGUSR1 if on else signal.SIGUSR2)


def fetch(url: str, headers: dict[str, str], method: str = "GET") -> Reply:
    """One request with urllib; HTTP errors are answers too."""
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Reply(response.status, _lower(response.headers.items()), response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, _lower(exc.headers.items()), exc.read())


def _lower(items: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in items}


def start_agent(folder: Path, token: str | None) -> SiteAgent:
    """Start ``tests.web.site_agent`` and wait for its ready line."""
    port = free_port()
    env = {**os.environ, "SITE_TOKEN": token or ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.web.site_agent", str(folder), str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        proc.kill()
        raise RuntimeError(f"site agent did not start: {line!r}")
    return SiteAgent(line.split()[1], folder, proc, token)


def stop_agent(agent: SiteAgent) -> None:
    """SIGTERM, as systemd stops it."""
    agent.proc.terminate()
    try:
        agent.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        agent.proc.kill()
        agent.proc.wait()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteAgent]:
    """An agent with a token, on the simulated plant, shared by a test module."""
    agent = start_agent(tmp_path_factory.mktemp("site"), TOKEN)
    try:
        wait_for(lambda: all(s["ts"] for s in agent.get("/api/v1/signals").json()["signals"]))
        yield agent
    finally:
        stop_agent(agent)


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    """Poll ``check()`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {check}")
        time.sleep(0.2)
