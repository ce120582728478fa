"""Damaged storage never loops the service: real damaged files through the real `edge-agent run`.

Each case damages a real twin or outbox file the way SD cards do (cut short, header
overwritten, random bytes in its pages), starts the agent as systemd would, and checks
that it keeps running: the file set aside, a fresh one in use, the loss logged at
ERROR (and, for the outbox, announced to the sinks), no traceback. Filesystems that
fail writes need root (a read-only tmpfs; an ext4 image whose files are made immutable
while the agent writes); those tests skip without it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from edge_agent.forward.config import OutboxConfig
from edge_agent.forward.outbox import Outbox
from edge_agent.storage_guard import EX_CANTCREAT
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.store import SignalStore
from tests.forward.factory import make_alert
from tests.twin.conftest import feed

SIGNALS = [f"plc.tag{i}" for i in range(20)]
PAGE = 4096


def _config(folder: Path, data: Path, sources: list[dict[str, object]] | None = None) -> Path:
    raw = {
        "agent": {"id": "gw", "data_dir": str(data)},
        "twin": {"flush_interval": "200ms"},
        "detect": {"interval": "250ms", "rules": []},
        "sources": sources or [],
        "sinks": [{"type": "jsonl", "name": "local", "path": "alerts.jsonl"}],
    }
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _fill_twin(path: Path) -> None:
    store = SignalStore.open(path, TwinConfig())
    for batch in feed(SIGNALS, 1500, start=time.time() - 2000):
        store.write(batch)
    store.close()


def _fill_outbox(path: Path, alerts: int = 7) -> None:
    outbox = Outbox.open(path, OutboxConfig(), ["local"])
    outbox.put_alerts([make_alert(i) for i in range(alerts)], "gw")
    outbox.close()


def _truncate(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 3)


def _header(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.write(random.Random(1).randbytes(100))


def _pages(path: Path) -> None:
    """Random bytes over a few whole pages past the first (the header stays valid)."""
    rng = random.Random(2)
    pages = path.stat().st_size // PAGE
    with path.open("r+b") as handle:
        for page in sorted(rng.sample(range(1, pages), min(3, pages - 1))):
            handle.seek(page * PAGE)
            handle.write(rng.randbytes(PAGE))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": _truncate,
    "header": _header,
    "pages": _pages,
}


class Agent:
    """`edge-agent run` in a subprocess, stderr to a file."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._err = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "-c", str(config)],
            stderr=self._err,
            env=env,
        )

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, needle: str, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while needle not in self.text():
            assert self.proc.poll() is None, f"agent exited {self.proc.returncode}:\n{self.text()}"
            assert time.monotonic() < deadline, f"no {needle!r} in:\n{self.text()}"
            time.sleep(0.1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=30)
        self._err.close()
        return code


def _ok(path: Path) -> bool:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_damaged_twin_is_set_aside_and_the_agent_keeps_running(tmp_path: Path, how: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _fill_twin(data / "twin.db")
    DAMAGE[how](data / "twin.db")
    agent = Agent(_config(tmp_path, data), tmp_path / "stderr.log")
    agent.wait_for("running")
    time.sleep(1.0)  # still up after READY: no exit, no restart
    assert agent.proc.poll() is None
    assert agent.stop() == 0
    text = agent.text()
    errors = [line for line in text.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "twin" in errors[0] and "Lost:" in errors[0], text
    assert "Traceback" not in text
    aside = list(data.glob("twin.db.corrupt-*"))
    assert len([p for p in aside if not p.name.endswith(("-wal", "-shm"))]) == 1, aside
    assert _ok(data / "twin.db")


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_damaged_outbox_is_replaced_and_its_loss_announced(tmp_path: Path, how: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _fill_outbox(data / "outbox.db", alerts=300)
    DAMAGE[how](data / "outbox.db")
    agent = Agent(_config(tmp_path, data), tmp_path / "stderr.log")
    agent.wait_for("running")
    deadline = time.monotonic() + 10
    while not (data / "alerts.jsonl").exists() or not (data / "alerts.jsonl").read_text():
        assert time.monotonic() < deadline, agent.text()
        time.sleep(0.1)
    assert agent.stop() == 0
    text = agent.text()
    assert "Traceback" not in text
    assert any(" ERROR " in line and "outbox" in line for line in text.splitlines()), text
    notices = [json.loads(line) for line in (data / "alerts.jsonl").read_text().splitlines()]
    lost = notices[0]["lost"]
    assert notices[0]["type"] == "notice" and lost["file"].startswith("outbox.db.corrupt-")
    assert lost["alert"] in (None, *range(301))  # as many as the damaged file still shows
    assert (data / lost["file"]).exists() and _ok(data / "outbox.db")


# -- filesystems that fail (root) ---------------------------------------------------


def _mount(args: list[str]) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here: {done.stderr.decode().strip()}")


@pytest.fixture
def readonly_fs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs mounted read-only (needs root)."""
    mount = tmp_path / f"ro-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    _mount(["-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(mount)])
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_read_only_data_dir_exits_73_in_one_sentence(tmp_path: Path, readonly_fs: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "run", "-c", str(_config(tmp_path, readonly_fs))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EX_CANTCREAT, done.stderr  # the unit does not restart on 73
    assert "read-only" in done.stderr and str(readonly_fs) in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def ext4(tmp_path: Path) -> Iterator[Path]:
    """A loop-mounted 32 MB ext4 image (needs root, mkfs.ext4, chattr)."""
    image, mount = tmp_path / "fs.img", tmp_path / f"ext4-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    with image.open("wb") as handle:
        handle.truncate(32 * 1024 * 1024)
    made = subprocess.run(["mkfs.ext4", "-q", str(image)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip("mkfs.ext4 not available")
    _mount(["-o", "loop", str(image), str(mount)])
    try:
        yield mount
    finally:
        subprocess.run(["chattr", "-R", "-i", str(mount)], capture_output=True, check=False)
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _chattr(flag: str, folder: Path) -> None:
    """Not the -shm: SQLite maps it, and a mapped page the kernel cannot back is SIGBUS."""
    for path in folder.iterdir():
        if path.name.startswith(("twin.db", "outbox.db")) and not path.name.endswith(
            (".lock", "-shm")
        ):
            subprocess.run(["chattr", flag, str(path)], check=True)


def test_writes_failing_mid_run_are_counted_and_retried(tmp_path: Path, ext4: Path) -> None:
    from tests.sources.serial.pty_pair import VIB, Device, PtyPair

    data = ext4 / "data"
    with PtyPair(tmp_path) as pair, Device(pair.device) as device:
        source: dict[str, object] = {
            "type": "serial",
            "name": "vib1",
            "port": str(pair.port),
            "parse": {"pattern": VIB},
        }
        agent = Agent(_config(tmp_path, data, [source]), tmp_path / "stderr.log")
        stop = threading.Event()

        def sensor() -> None:
            while not stop.is_set():
                device.write(b"VIB,rms=0.31,peak=1.20,temp=41.8\n")
                time.sleep(0.05)

        thread = threading.Thread(target=sensor)
        thread.start()
        try:
            agent.wait_for("running")
            time.sleep(1.0)
            _chattr("+i", data)  # every write to the twin now fails (EPERM), like a dying card
            agent.wait_for("twin: cannot write samples")
            time.sleep(2.0)
            assert agent.proc.poll() is None
            _chattr("-i", data)
            agent.wait_for("twin: writing again")
        finally:
            stop.set()
            thread.join()
            _chattr("-i", data)
            code = agent.stop()
    text = agent.text()
    assert code == 0 and "Traceback" not in text, text
    assert text.count("twin: cannot write samples") == 1  # logged once, retried every flush
    assert "failed flushes so far" in text
    assert os.path.exists(data / "twin.db") and _ok(data / "twin.db")
