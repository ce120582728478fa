"""The plant's serial vibration probe: a socat pty pair, the plant writing one end.

``socat`` links two pseudo-terminals (raw, no echo) and names them with symlinks
in a private temporary directory: the plant writes lines to ``plant`` and the
agent opens ``probe`` as if it were ``/dev/ttyUSB0`` (a pty ignores baud rates).
Writes never block the plant: when nobody drains the other end and the buffers
are full, a line is dropped, as a real sensor's would be.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

_READY = b"starting data transfer loop"
_START_TIMEOUT_S = 10.0


class ProbePort:
    """A pty pair served by socat.

    Attributes:
        path: the agent's end (a symlink to a ``/dev/pts/N``); empty until opened.
        dropped: lines dropped because the pty buffers were full.
    """

    def __init__(self) -> None:
        self.path = ""
        self.dropped = 0
        self._dir: Path | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._fd: int | None = None
        self._drain: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Start socat and open the plant's end.

        Raises:
            OSError: socat is missing, or did not set up the pair in time.
        """
        if shutil.which("socat") is None:
            raise OSError("socat not found: install it (apt-get install socat)")
        self._dir = Path(tempfile.mkdtemp(prefix="edge-agent-sim-"))
        plant, agent = self._dir / "plant", self._dir / "probe"
        self._proc = await asyncio.create_subprocess_exec(
            "socat", "-d", "-d",
            f"pty,raw,echo=0,link={plant}", f"pty,raw,echo=0,link={agent}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await self._wait_ready()
        self._fd = os.open(plant, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.path = str(agent)

    async def _wait_ready(self) -> None:
        stderr = self._proc.stderr if self._proc is not None else None
        if stderr is None:
            raise OSError("socat has no stderr pipe")
        seen: list[bytes] = []
        try:
            async with asyncio.timeout(_START_TIMEOUT_S):
                while _READY not in (line := await stderr.readline()):
                    if not line:
                        raise OSError(f"socat exited: {b''.join(seen[-3:]).decode().strip()}")
                    seen.append(line)
        except TimeoutError:
            raise OSError("socat did not set up the pty pair in time") from None
        # socat keeps logging (e.g. when the agent closes its end): drain it so it never blocks.
        self._drain = asyncio.create_task(_discard(stderr))

    def write(self, line: str | bytes) -> bool:
        """Send one line (its end of line included); False if it was dropped."""
        if self._fd is None:
            return False
        data = line.encode("latin-1") if isinstance(line, str) else line
        try:
            os.write(self._fd, data)
        except BlockingIOError:
            self.dropped += 1
            return False
        return True

    async def close(self) -> None:
        """Close the plant's end, stop socat, remove the symlinks."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            await self._proc.wait()
        if self._drain is not None:
            self._drain.cancel()
            await asyncio.wait([self._drain])  # waits without re-raising its cancellation
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._proc, self._drain, self._dir = None, None, None


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
