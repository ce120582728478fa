"""A sink's list of MQTT brokers, walked on failure (Sparkplug's multi-server behaviour).

A fleet rides an existing broker cluster's failover (EMQX, HiveMQ, VerneMQ, bridged
mosquitto) by listing the cluster's addresses: the sink stays on the broker that
works, and when it fails tries the next one, wrapping round. It is never connected
to two at once. Each entry is ``host``, ``host:port``, ``[v6addr]:port``, or a URL
``mqtt://host[:port]`` (plain) / ``mqtts://host[:port]`` (TLS, the sink's ``tls``
must not be ``off``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from edge_agent.errors import DeliveryError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Broker:
    """One broker address."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_broker(entry: str, default_port: int, tls: bool) -> Broker:
    """Read one ``servers`` entry.

    Raises:
        ValueError: a malformed entry, or a scheme that contradicts ``tls``.
    """
    text = entry.strip()
    if "://" not in text:
        text = f"mqtt{'s' if tls else ''}://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"{entry!r}: the scheme must be mqtt:// or mqtts://")
    if (parts.scheme == "mqtts") != tls:
        raise ValueError(f"{entry!r}: {parts.scheme}:// does not match the sink's tls setting")
    if parts.path not in ("", "/") or parts.query or parts.username or not parts.hostname:
        raise ValueError(f"{entry!r}: expected host, host:port or mqtt[s]://host:port")
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ValueError(f"{entry!r}: {exc}") from None
    return Broker(parts.hostname, port)


class BrokerWalk:
    """Which broker to try next: stay on a working one, walk on failure, wrap round.

    Args:
        brokers: the addresses, in order of preference.
    """

    def __init__(self, brokers: list[Broker]) -> None:
        self.brokers = brokers
        self.index = 0

    @property
    def current(self) -> Broker:
        """The broker in use, or the next one to try."""
        return self.brokers[self.index]

    def advance(self) -> None:
        """Move to the next broker (after a failure, or a primary host offline here)."""
        self.index = (self.index + 1) % len(self.brokers)

    async def first_that_connects(self, connect: Callable[[Broker], Awaitable[T]]) -> T:
        """Try each broker once, from the current one; the first that connects stays current.

        Raises:
            DeliveryError: every broker failed; the message names each failure.
        """
        # Here, not at the top: the config models import this module and load no asyncio.
        import asyncio

        from edge_agent.cancel import cancel_was_swallowed

        failures: list[str] = []
        for _ in self.brokers:
            try:
                return await connect(self.current)
            except DeliveryError as exc:
                failures.append(str(exc))
                self.advance()
                if cancel_was_swallowed():  # by aiomqtt's connect: stop, not the next broker
                    raise asyncio.CancelledError from exc
        raise DeliveryError("; ".join(failures))
