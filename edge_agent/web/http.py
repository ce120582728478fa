"""A small HTTP/1.1 server on ``asyncio.start_server``: GET and HEAD, keep-alive, no bodies.

The site view is read-only, so the server accepts only GET and HEAD requests
without a body; anything else is answered 405 (or 400/413) and the connection
closed. It runs as coroutines on the agent's own event loop: no thread, no
second loop. Limits keep a misbehaving client from holding memory: a request
head of at most :data:`MAX_HEAD` bytes, :data:`MAX_CONNECTIONS` connections,
and an idle keep-alive connection is closed after ``idle_timeout`` seconds.

Why hand-written rather than aiohttp or Starlette on uvicorn: see BENCHMARKS.md
(``bench:web_server``). With this handful of GET routes the frameworks' features
(routing DSLs, middleware, multipart, websockets) go unused while their import
costs several MB of RSS on a Raspberry Pi.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024
"""Bytes of request line and headers accepted (more: 431 and close)."""
MAX_CONNECTIONS = 64
"""Open connections accepted at once (more: 503 and close)."""
GZIP_MIN = 2048
"""Bodies at least this long are gzipped when the client accepts it."""

REASONS = {
    200: "OK",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    421: "Misdirected Request",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Request:
    """One parsed request.

    Attributes:
        method: ``GET`` or ``HEAD``.
        path: the URL path, percent-decoded.
        query: query parameters (the last of repeated names wins).
        headers: header names lowercased.
        peer: the client's address.
    """

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    peer: str = ""


@dataclass
class Response:
    """A complete response; ``body`` is sent as is (the server may gzip it)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    """The request cannot be served; ``status`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpServer:
    """Serves ``handler`` on connections accepted by :meth:`start`.

    Args:
        handler: turns a request into a response (exceptions become a 500).
        headers: headers added to every response (the security headers).
        idle_timeout: seconds an idle keep-alive connection is kept open.
    """

    def __init__(
        self, handler: Handler, headers: Mapping[str, str], idle_timeout: float = 30.0
    ) -> None:
        self.handler = handler
        self.headers = dict(headers)
        self.idle_timeout = idle_timeout
        self.connections = 0
        self.requests = 0
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> asyncio.Server:
        """Listen on ``host:port``; raises OSError when the port cannot be bound."""
        return await asyncio.start_server(self._serve, host or None, port, limit=MAX_HEAD)

    def close_connections(self) -> None:
        """Close every open connection (at stop: keep-alive ones would linger)."""
        for writer in list(self._writers):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            if self.connections > MAX_CONNECTIONS:
                await self._send(writer, Response(503, b'{"error":"too many connections"}'), "")
                return
            peer = writer.get_extra_info("peername")
            await self._requests(reader, writer, str(peer[0]) if peer else "")
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away or idled out: nothing to answer
        finally:
            self.connections -= 1
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        """Answer requests on one connection until it closes or asks to."""
        while True:
            async with asyncio.timeout(self.idle_timeout):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.LimitOverrunError:
                    await self._send(writer, _error(431, "request head too large"), "")
                    return
            try:
                request, keep = parse_head(head, peer)
            except BadRequest as exc:
                await self._send(writer, _error(exc.status, str(exc)), "")
                return
            self.requests += 1
            response = await self._handle(request)
            await self._send(writer, response, request.method, request, keep)
            if not keep:
                return

    async def _handle(self, request: Request) -> Response:
        try:
            return await self.handler(request)
        except BadRequest as exc:
            return _error(exc.status, str(exc))
        except Exception:  # a bug in one handler must not take the server down
            log.exception("web: %s %s failed", request.method, request.path)
            return _error(500, "internal error (logged)")

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        response: Response,
        method: str,
        request: Request | None = None,
        keep: bool = False,
    ) -> None:
        body = response.body
        headers = {**self.headers, **response.headers, "Content-Type": response.content_type}
        compress = request is not None and accepts_gzip(request) and len(body) >= GZIP_MIN
        if compress and "Content-Encoding" not in headers:
            body = gzip.compress(body, compresslevel=1, mtime=0)
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
        headers["Content-Length"] = str(len(body))
        headers["Connection"] = "keep-alive" if keep else "close"
        lines = [f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if method != "HEAD":
            writer.write(body)
        await writer.drain()


def parse_head(head: bytes, peer: str) -> tuple[Request, bool]:
    """Parse a request line and headers; returns the request and whether to keep alive.

    Raises:
        BadRequest: malformed, not GET/HEAD, or with a body.
    """
    try:
        text = head.decode("latin-1")
        line, *header_lines = text[:-4].split("\r\n")
        method, target, version = line.split(" ")
    except ValueError:
        raise BadRequest(400, "malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise BadRequest(400, "HTTP/1.x only")
    headers = _headers(header_lines)
    if method not in ("GET", "HEAD"):
        raise BadRequest(405, "read-only: GET and HEAD only")
    if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
        raise BadRequest(413, "requests carry no body here")
    url = urlsplit(target)
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    wanted = headers.get("connection", "").lower()
    keep = wanted != "close" if version == "HTTP/1.1" else wanted == "keep-alive"
    return Request(method, unquote(url.path), query, headers, peer), keep


def _headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "malformed header line")
        headers[name.lower()] = value.strip()
    return headers


def accepts_gzip(request: Request) -> bool:
    """Whether the client takes a gzipped body."""
    return "gzip" in request.headers.get("accept-encoding", "")


def _error(status: int, message: str) -> Response:
    return Response(status, json.dumps({"error": message}).encode())
