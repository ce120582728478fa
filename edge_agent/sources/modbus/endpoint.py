"""Where a Modbus device is: the URL of a source, parsed.

Apart from :mod:`edge_agent.sources.modbus.link` because the source's config checks
its URL with it: the config is loaded by a child process at the start, before the
agent imports asyncio and pymodbus, and must not pull them in (``run`` forks that
child as early as it can).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

Scheme = Literal["tcp", "rtu", "rtu+tcp", "ascii", "ascii+tcp"]
SCHEMES: tuple[Scheme, ...] = ("tcp", "rtu", "rtu+tcp", "ascii", "ascii+tcp")
Framing = Literal["socket", "rtu", "ascii"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a Modbus device is, parsed from ``tcp://h:502``, ``rtu+tcp://h:4001``,
    ``rtu:///dev/ttyUSB0``, ``ascii:///dev/ttyUSB0`` or ``ascii+tcp://h:4001``."""

    scheme: Scheme
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Parse a device URL.

        Raises:
            ValueError: unknown scheme, missing host/port or serial device path.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme in {url!r}; expected one of {', '.join(SCHEMES)}")
        if scheme in ("rtu", "ascii"):
            path = parts.path or parts.netloc
            if not path:
                raise ValueError(
                    f"{url!r}: expected a serial device such as {scheme}:///dev/ttyUSB0"
                )
            return cls(scheme, path, 0)
        if not parts.hostname:
            raise ValueError(f"{url!r}: expected a host, such as {scheme}://10.0.0.5:502")
        try:
            port = parts.port or 502
        except ValueError as exc:
            raise ValueError(f"{url!r}: bad port") from exc
        return cls(scheme, parts.hostname, port)

    @property
    def serial_port(self) -> bool:
        """The device is on a local serial port (``rtu://``, ``ascii://``), not a socket."""
        return self.scheme in ("rtu", "ascii")

    @property
    def framing(self) -> Framing:
        """How requests and replies are framed: Modbus TCP's header, RTU's CRC or ASCII text."""
        return "socket" if self.scheme == "tcp" else "ascii" if "ascii" in self.scheme else "rtu"

    def __str__(self) -> str:
        if self.serial_port:
            return f"{self.scheme}://{self.host}"
        return f"{self.scheme}://{self.host}:{self.port}"
