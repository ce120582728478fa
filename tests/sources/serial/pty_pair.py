"""A socat pty pair: a real serial line for tests, one end for the device, one for the agent.

``socat pty,raw,echo=0,link=<device> pty,raw,echo=0,link=<port>`` joins two
pseudo-terminals. A test writes what a sensor would send into the device end and
the source opens the port end as if it were ``/dev/ttyUSB0``. Stopping socat makes
both links vanish, like a USB adapter being unplugged; starting it again brings
them back (on new ``/dev/pts`` numbers, as udev symlinks do).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from edge_agent.sources.serial.config import SerialSourceConfig
from edge_agent.sources.serial.source import SerialSource
from edge_agent.types import Sample

SOCAT = shutil.which("socat")
WAIT = 10.0  # seconds before a test gives up waiting for the line
VIB = r"^VIB,rms=(?P<rms>[^,]+),peak=(?P<peak>[^,]+),temp=(?P<temp>[^,]+)$"


def make(pair: PtyPair, **keys: Any) -> SerialSource:
    """A source named vib1 on the pair's port; by default it parses VIB lines by regex."""
    raw = {"type": "serial", "name": "vib1", "port": str(pair.port), **keys}
    raw.setdefault("parse", {"pattern": VIB})
    return SerialSource(SerialSourceConfig.model_validate(raw))


async def collect(source: SerialSource, count: int) -> list[Sample]:
    """Read until at least ``count`` samples came (the line is asynchronous)."""
    got: list[Sample] = []
    async with asyncio.timeout(WAIT):
        while len(got) < count:
            got += await source.read()
            await asyncio.sleep(0.005)
    return got


async def frames_seen(source: SerialSource, count: int) -> None:
    """Wait until the source has decoded ``count`` frames."""
    async with asyncio.timeout(WAIT):
        # The counters are plain numbers with no event to await: poll them.
        while source.counters["frames"] < count:  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def values(samples: list[Sample]) -> dict[str, float | None]:
    """The last value of each signal."""
    return {sample.signal: sample.value for sample in samples}


class PtyPair:
    """Runs socat between ``device`` and ``port`` symlinks in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.device = folder / "device"
        self.port = folder / "port"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start socat and wait until both ends exist."""
        assert SOCAT is not None, "socat is not installed"
        for link in (self.device, self.port):
            if link.is_symlink() and not link.exists():
                link.unlink()  # dangling, left by a socat that was killed
        args = [SOCAT, f"pty,raw,echo=0,link={self.device}", f"pty,raw,echo=0,link={self.port}"]
        self._proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not (self.device.exists() and self.port.exists()):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"socat did not create {self.device} and {self.port}")
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop socat: both ends vanish (the cable is pulled)."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None

    def kill(self) -> None:
        """Kill socat hard: the links stay behind, dangling, as a stale device node would."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Device:
    """The sensor's end of the line: write bytes, read requests."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> Self:
        self.fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)

    def write(self, data: bytes) -> None:
        """Send bytes as the device (small writes to a pty complete at once)."""
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                time.sleep(0.001)

    async def read_until(self, end: bytes) -> bytes:
        """Bytes the agent sent, up to and including ``end`` (gives up after 10 s)."""
        got = bytearray()
        async with asyncio.timeout(10.0):
            while not got.endswith(end):
                try:
                    got += os.read(self.fd, 1)
                except BlockingIOError:
                    await asyncio.sleep(0.002)
        return bytes(got)
