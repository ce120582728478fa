"""``edge-agent serial-monitor`` against a socat pty pair with a sensor talking on it."""

from __future__ import annotations

import argparse
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.cli.serial_monitor import EX_UNAVAILABLE, EX_USAGE, register
from tests.sources.serial.pty_pair import VIB, Device, PtyPair


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["serial-monitor", *argv])
    return int(args.func(args))


@pytest.fixture
def talking(tmp_path: Path) -> Iterator[PtyPair]:
    """A pty pair whose device end sends a VIB line every 20 ms."""
    stop = threading.Event()
    with PtyPair(tmp_path) as pair, Device(pair.device) as device:

        def talk() -> None:
            while not stop.wait(0.02):
                device.write(b"VIB,rms=0.31,peak=1.2,temp=41.8\r\n")

        thread = threading.Thread(target=talk)
        thread.start()
        try:
            yield pair
        finally:
            stop.set()
            thread.join()


def test_frames_are_shown(talking: PtyPair, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([str(talking.port), "--delimiter", r"\r\n", "--seconds", "1"]) == 0
    out = capsys.readouterr().out
    assert "b'VIB,rms=0.31,peak=1.2,temp=41.8'" in out
    assert "frames: " in out


def test_samples_of_a_configured_source_are_shown(
    talking: PtyPair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        "sources:\n"
        f"  - {{type: serial, name: vib1, interval: 100ms, port: '{talking.port}',\n"
        f"      framing: {{delimiter: \"\\r\\n\"}}, parse: {{pattern: '{VIB}'}}}}\n"
    )
    assert run(["--config", str(config), "--source", "vib1", "--seconds", "1"]) == 0
    out = capsys.readouterr().out
    assert "vib1.rms = 0.31 (good)" in out
    assert "vib1.temp = 41.8 (good)" in out
    assert "counters: frames=" in out and "good=" in out


@pytest.fixture
def device_server() -> Iterator[str]:
    """A device server in raw TCP mode whose sensor sends a VIB line every 20 ms; its URL."""
    stop = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.1)

        def serve() -> None:
            while not stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                with client:
                    while not stop.wait(0.02):
                        try:
                            client.sendall(b"VIB,rms=0.31,peak=1.2,temp=41.8\r\n")
                        except OSError:
                            break  # the monitor is done: wait for the next one

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            stop.set()
            thread.join()


def test_frames_from_a_device_server_are_shown(
    device_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run([device_server, "--delimiter", r"\r\n", "--seconds", "1"]) == 0
    out = capsys.readouterr().out
    assert "b'VIB,rms=0.31,peak=1.2,temp=41.8'" in out


def test_an_unsupported_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["rfc2217://10.0.0.7:4001", "--seconds", "0.1"]) == EX_USAGE
    assert "RFC 2217 is not supported" in capsys.readouterr().err


def test_missing_port_exits_unavailable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([str(tmp_path / "ttyUSB9"), "--seconds", "0.1"]) == EX_UNAVAILABLE
    assert "cannot open" in capsys.readouterr().err


def test_no_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--seconds", "0.1"]) == EX_USAGE
    assert "give a port" in capsys.readouterr().err


def test_a_capture_is_decoded_against_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        "sources:\n"
        "  - {type: serial, name: vib1, port: /dev/ttyUSB0, parse: {type: kv},\n"
        "     signals: [{name: rms}]}\n"
    )
    capture = tmp_path / "line.bin"
    capture.write_bytes(b"VIB,rms=0.5\nVIB,rms=oops\n")
    assert run(["--config", str(config), "--capture", str(capture)]) == 1
    out = capsys.readouterr().out
    assert "vib1.rms = 0.5 (good)" in out
    assert "vib1.rms = - (bad)" in out
    assert "counters: bad_value=1, frames=2, good=1" in out
