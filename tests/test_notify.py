"""systemd notify protocol against a real unix datagram socket."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

import pytest

from edge_agent.notify import Notifier


def test_sends_state_lines(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        Notifier(path, None).send("READY=1")
        assert server.recv(100) == b"READY=1"


def test_without_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier.from_env()
    notifier.send("READY=1")
    assert notifier.address is None and notifier.watchdog_interval is None


def test_watchdog_is_half_the_timeout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "s"))
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert Notifier.from_env().watchdog_interval == 15.0


def test_watchdog_for_another_pid_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/x")
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert Notifier.from_env().watchdog_interval is None


def test_dead_socket_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    Notifier(str(tmp_path / "missing.sock"), None).send("READY=1")
    assert "systemd notify READY failed" in caplog.text


def test_a_receiver_that_stopped_reading_never_blocks_the_sender(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """systemd's end full (nobody reads): every send returns, the failure is logged once."""
    caplog.set_level(logging.INFO, "edge_agent.notify")
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        notifier = Notifier(path, None)
        done = threading.Event()

        def ping() -> None:
            for _ in range(2000):  # a unix datagram queue holds a few hundred at most
                notifier.send("WATCHDOG=1")
            done.set()

        threading.Thread(target=ping, daemon=True).start()
        assert done.wait(20), "send blocked on a full receiver"
        assert caplog.text.count("systemd notify WATCHDOG failed") == 1
        while True:  # systemd reads again: the next ping goes through and says so
            try:
                server.recv(100, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
        notifier.send("WATCHDOG=1")
        assert server.recv(100) == b"WATCHDOG=1"
        assert "systemd notify WATCHDOG works again" in caplog.text
