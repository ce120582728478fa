"""Where a serial source's bytes come from: a local port, or a device server over TCP.

Both kinds hand every chunk of bytes to ``on_data`` and a loss to ``on_lost``
(once), from the event loop, so the source's framing and decoding do not know
which one they read. A local port is opened non-blocking with pyserial and
watched with ``loop.add_reader``; a ``tcp://host:port`` endpoint (a serial device
server in raw TCP mode: Moxa NPort, USR, Lantronix) is an asyncio connection.

pyserial is imported only when a local port is opened.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from edge_agent.errors import SourceError
from edge_agent.sources.serial.config import SerialSourceConfig, tcp_address

if TYPE_CHECKING:
    import serial

log = logging.getLogger(__name__)

_PARITY = {"none": "N", "even": "E", "odd": "O", "mark": "M", "space": "S"}
_READ_SIZE = 65536
CONNECT_TIMEOUT = 5.0
"""Seconds a TCP connect may take: a host that drops SYNs would hold it ~2 min."""
_SEND_BUFFER_MOST = 65536  # unsent bytes beyond which the server counts as not reading
# A server that vanishes without closing (power cut, cable) is found by keep-alive
# probes after about _KEEPIDLE + _KEEPCNT * _KEEPINTVL seconds, even on a silent line.
_KEEPIDLE, _KEEPINTVL, _KEEPCNT = 20, 5, 3

OnData = Callable[[bytes], None]
OnLost = Callable[[str], None]


class Link(Protocol):
    """An open line: bytes arrive through the callbacks given at open."""

    def write(self, data: bytes) -> None:
        """Send ``data``; raises :class:`SourceError` if the line is lost or not taking it."""

    def stop(self) -> None:
        """Stop delivering bytes (the line is lost or being closed)."""

    def close(self) -> None:
        """Stop and release the line."""


async def open_link(cfg: SerialSourceConfig, on_data: OnData, on_lost: OnLost) -> Link:
    """Open the source's port or connect to its TCP endpoint.

    Raises:
        SourceError: the port cannot be opened, or the server cannot be reached.
    """
    address = tcp_address(cfg.port)
    if address is None:
        return _PortLink(cfg, on_data, on_lost)
    return await _connect(cfg, address, on_data, on_lost)


def describe(cfg: SerialSourceConfig) -> str:
    """The line as the logs name it: the port and its settings, or the endpoint."""
    if tcp_address(cfg.port) is not None:
        return cfg.port  # the line settings are the device server's
    stop = f"{cfg.stop_bits:g}"
    return f"{cfg.port} at {cfg.baud} {cfg.data_bits}{_PARITY[cfg.parity]}{stop}"


class _PortLink:
    """A local port, non-blocking, its file descriptor watched by the loop."""

    def __init__(self, cfg: SerialSourceConfig, on_data: OnData, on_lost: OnLost) -> None:
        self._cfg = cfg
        self._on_data = on_data
        self._on_lost = on_lost
        self._port: serial.Serial | None = _open_port(cfg)
        asyncio.get_running_loop().add_reader(self._port.fileno(), self._on_readable)

    def write(self, data: bytes) -> None:
        assert self._port is not None
        try:
            written = os.write(self._port.fileno(), data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            self.stop()
            self._on_lost(f"write failed: {exc}")
            raise SourceError(f"{self._cfg.name}: lost {self._cfg.port}: {exc}") from exc
        if written < len(data):
            raise SourceError(f"{self._cfg.name}: {self._cfg.port} does not accept output")

    def stop(self) -> None:
        if self._port is not None and self._port.fd is not None:
            asyncio.get_running_loop().remove_reader(self._port.fileno())

    def close(self) -> None:
        self.stop()
        if self._port is not None:
            port, self._port = self._port, None
            _close_port(port)

    def _on_readable(self) -> None:
        assert self._port is not None
        try:
            data = self._port.read(_READ_SIZE)
        except OSError as exc:  # pyserial's SerialException is an OSError
            self.stop()  # a dead fd stays readable: the loop would spin on it
            self._on_lost(str(exc))
            return
        if data:
            self._on_data(data)


class _TcpLink(asyncio.Protocol):
    """A raw TCP connection to a serial device server: its bytes are the line's bytes."""

    def __init__(self, cfg: SerialSourceConfig, on_data: OnData, on_lost: OnLost) -> None:
        self._cfg = cfg
        self._on_data = on_data
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._stopped = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        _keep_alive(transport.get_extra_info("socket"))

    def data_received(self, data: bytes) -> None:
        if not self._stopped:
            self._on_data(data)

    def eof_received(self) -> bool:
        return False  # the server closed its side: close ours, connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._stopped:
            self._stopped = True
            self._on_lost(f"connection lost: {exc}" if exc else "the server closed the connection")

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise SourceError(f"{self._cfg.name}: lost {self._cfg.port}: connection closed")
        transport.write(data)
        if transport.get_write_buffer_size() > _SEND_BUFFER_MOST:
            raise SourceError(f"{self._cfg.name}: {self._cfg.port} does not accept output")

    def stop(self) -> None:
        self._stopped = True

    def close(self) -> None:
        self.stop()
        if self._transport is not None:
            self._transport.abort()  # nothing we sent is still worth waiting for


async def _connect(
    cfg: SerialSourceConfig, address: tuple[str, int], on_data: OnData, on_lost: OnLost
) -> _TcpLink:
    loop = asyncio.get_running_loop()
    host, port = address
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _, link = await loop.create_connection(
                lambda: _TcpLink(cfg, on_data, on_lost), host, port
            )
    except TimeoutError:
        raise SourceError(
            f"{cfg.name}: cannot open {cfg.port}: no answer within {CONNECT_TIMEOUT:g} s"
        ) from None
    except OSError as exc:  # refused, unreachable, unknown host (socket.gaierror)
        raise SourceError(f"{cfg.name}: cannot open {cfg.port}: {_reason(exc)}") from exc
    return link


def _reason(exc: OSError) -> str:
    """``Connection refused`` rather than asyncio's ``[Errno 111] Connect call failed (...)``."""
    if exc.errno and not isinstance(exc, socket.gaierror):
        return os.strerror(exc.errno)
    return str(exc)  # a resolver error, or asyncio's summary of several addresses


def _keep_alive(sock: socket.socket | None) -> None:
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", _KEEPIDLE),
        ("TCP_KEEPINTVL", _KEEPINTVL),
        ("TCP_KEEPCNT", _KEEPCNT),
    ):
        option = getattr(socket, name, None)  # Linux names; elsewhere the system's defaults
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def _open_port(cfg: SerialSourceConfig) -> serial.Serial:
    import serial

    options: dict[str, Any] = {
        "baudrate": cfg.baud,
        "bytesize": cfg.data_bits,
        "parity": _PARITY[cfg.parity],
        "stopbits": cfg.stop_bits,
        "xonxoff": cfg.flow_control == "xonxoff",
        "rtscts": cfg.flow_control == "rtscts",
        "timeout": 0,  # non-blocking: the loop tells us when bytes are there
        "write_timeout": 0,
        "exclusive": True,  # a second reader would steal bytes and break frames
    }
    try:
        port = serial.Serial(cfg.port, **options)
    except (OSError, ValueError) as exc:  # SerialException is an OSError
        raise SourceError(f"{cfg.name}: cannot open {cfg.port}: {exc}") from exc
    try:
        port.reset_input_buffer()  # stale bytes from before we opened
    except OSError as exc:
        _close_port(port)
        raise SourceError(f"{cfg.name}: cannot use {cfg.port}: {exc}") from exc
    return port


def _close_port(port: serial.Serial) -> None:
    try:
        port.close()
    except OSError as exc:  # SerialException included
        log.debug("closing %s: %s", port.port, exc)  # the port is gone already
