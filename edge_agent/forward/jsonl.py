"""JSONL file sink: appends one JSON line per message, fsync once per batch.

The demo's local sink, and a simple audit trail. A batch is acknowledged only after
``fsync`` returned, so a crash re-sends (duplicates) rather than loses a line.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Self

from edge_agent.errors import DeliveryError
from edge_agent.forward.config import JsonlSinkConfig
from edge_agent.forward.outbox_rows import Record


class JsonlSink:
    """Appends each message's JSON payload as one line to a file.

    Args:
        config: the sink's config.
        gateway: this gateway's id (the payloads carry it already; kept for symmetry).
    """

    def __init__(self, config: JsonlSinkConfig, gateway: str = "edge-agent") -> None:
        self.config = config
        self.gateway = gateway
        self._file: IO[bytes] | None = None

    @property
    def name(self) -> str:
        """The sink's name."""
        return self.config.name

    async def __aenter__(self) -> Self:
        """Open the file for appending."""
        try:
            self._file = await asyncio.to_thread(self._open)
        except OSError as exc:
            raise DeliveryError(f"{self.name}: cannot open {self.config.path}: {exc}") from exc
        return self

    def _open(self) -> IO[bytes]:
        path = Path(self.config.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("ab")

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    async def send(self, batch: Sequence[Record]) -> None:
        """Append the batch and fsync it; DeliveryError on a write failure (disk full)."""
        if self._file is None:
            raise DeliveryError(f"{self.name}: send() outside 'async with'")
        data = b"".join(record.body + b"\n" for record in batch)
        try:
            await asyncio.to_thread(self._write, self._file, data)
        except OSError as exc:
            raise DeliveryError(f"{self.name}: cannot write {self.config.path}: {exc}") from exc

    @staticmethod
    def _write(file: IO[bytes], data: bytes) -> None:
        start = file.tell()
        try:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        except OSError:
            # Cut a half-written batch so the file stays one JSON object per line.
            file.truncate(start)
            raise
