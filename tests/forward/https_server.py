"""A small HTTPS receiver made by the tests: scripted answers, records what it got."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.forward.conftest import Certs

POLL = 0.02
"""serve_forever's poll interval: its default (0.5 s) is what each shutdown() waits."""


@dataclass
class Receiver:
    """The receiver's script (status, delay, body) and the requests it got."""

    port: int = 0
    scheme: str = "https"
    host: str = "localhost"
    path: str = "/alerts"
    plan: deque[tuple[int, float, str]] = field(default_factory=deque)
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Where to POST."""
        return f"{self.scheme}://{self.host}:{self.port}{self.path}"

    def items(self, status: int = 200) -> list[dict[str, Any]]:
        """Items of the requests that were answered with ``status``."""
        return [
            item
            for (_, body), code in zip(self.requests, self.answered, strict=False)
            if code == status
            for item in body["items"]
        ]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, delay, text = receiver.plan.popleft() if receiver.plan else (200, 0.0, "ok")
            receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            receiver.answered.append(0 if delay else status)  # 0: answered too late
            time.sleep(delay)
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left is expected here


@contextmanager
def http_receiver(path: str = "/alerts") -> Iterator[Receiver]:
    """Serve plain HTTP on a free loopback port in a thread (``receiver.url`` is http://)."""
    receiver = Receiver(scheme="http", host="127.0.0.1", path=path)
    server = _Server(("127.0.0.1", 0), _handler(receiver))
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(POLL,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def https_receiver(certs: Certs) -> Iterator[Receiver]:
    """Serve HTTPS on a free loopback port in a thread."""
    receiver = Receiver()
    server = _Server(("127.0.0.1", 0), _handler(receiver))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(POLL,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
