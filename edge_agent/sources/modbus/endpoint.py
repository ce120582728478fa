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

Scheme = Literal["tcp", "rtu", "rtu+tcp"]
SCHEMES: tuple[Scheme, ...] = ("tcp", "rtu", "rtu+tcp")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a Modbus device is, parsed from ``tcp://h:502``, ``rtu+tcp://h:4001``, ``rtu:///dev/ttyUSB0``."""

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
        if scheme == "rtu":
            path = parts.path or parts.netloc
            if not path:
                raise ValueError(f"{url!r}: expected a serial device such as rtu:///dev/ttyUSB0")
            return cls("rtu", path, 0)
        if not parts.hostname:
            raise ValueError(f"{url!r}: expected a host, such as tcp://10.0.0.5:502")
        try:
            port = parts.port or 502
        except ValueError as exc:
            raise ValueError(f"{url!r}: bad port") from exc
        return cls(scheme, parts.hostname, port)

    def __str__(self) -> str:
        return (
            f"rtu://{self.host}"
            if self.scheme == "rtu"
            else f"{self.scheme}://{self.host}:{self.port}"
        )
