"""The server itself, in this test's event loop: host check, limits, keep-alive, caching, stop."""

from __future__ import annotations

import asyncio
import gzip
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from edge_agent.config import AgentConfig
from edge_agent.metrics import AgentCollector, AgentView
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.store import SignalStore
from edge_agent.web.alerts import StoredAlerts
from edge_agent.web.config import WebConfig
from edge_agent.web.http import MAX_HEAD
from edge_agent.web.server import load_static, serve_web_forever
from edge_agent.web.site import Site
from edge_agent.worker import Worker
from tests.conftest import free_port

STATIC = Path(__file__).resolve().parents[2] / "edge_agent" / "web" / "static"


@pytest_asyncio.fixture(loop_scope="function")  # the server must run in the test's loop
async def served(tmp_path: Path) -> AsyncIterator[tuple[int, Site]]:
    """The site view of an agent with an empty twin, on a free loopback port, no token."""
    worker = Worker()
    store = await worker.run(SignalStore.open, tmp_path / "twin.db", TwinConfig())
    site = Site(
        AgentConfig(),
        AgentCollector(AgentView("gw-test")),
        store,
        worker.run,
        StoredAlerts(tmp_path / "outbox.db"),
    )
    port = free_port()
    task = asyncio.create_task(serve_web_forever(WebConfig(listen=f"127.0.0.1:{port}"), site, None))
    await _connectable(port)
    try:
        yield port, site
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.run(store.close)
        worker.close()


async def _connectable(port: int) -> None:
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        return
    raise AssertionError("server did not start")


async def exchange(port: int, *requests: bytes) -> list[tuple[str, dict[str, str], bytes]]:
    """Send requests on one connection; read one response per request."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    try:
        for request in requests:
            writer.write(request)
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {k.lower(): v for k, _, v in (h.partition(": ") for h in head[1:] if h)}
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length) if not request.startswith(b"HEAD") else b""
            answers.append((head[0], headers, body))
    finally:
        writer.close()
    return answers


def get(path: str, host: str = "127.0.0.1", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


async def test_foreign_host_names_are_refused(served: tuple[int, Site]) -> None:
    port, _ = served
    for host, status in [
        ("evil.example", "421"),
        (f"localhost:{port}", "200"),
        ("[::1]:1", "200"),
        ("127.0.0.1", "200"),
    ]:
        ((line, _, _),) = await exchange(port, get("/api/v1/status", host))
        assert line.split()[1] == status, host


async def test_keep_alive_head_and_etag(served: tuple[int, Site]) -> None:
    port, _ = served
    first, head, again = await exchange(
        port, get("/static/app.js"), b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", get("/")
    )
    assert first[0] == "HTTP/1.1 200 OK" and first[2] == (STATIC / "app.js").read_bytes()
    assert head[0] == "HTTP/1.1 200 OK" and int(head[1]["content-length"]) > 0
    etag = again[1]["etag"]
    ((line, _, body),) = await exchange(port, get("/", extra=f"If-None-Match: {etag}\r\n"))
    assert line == "HTTP/1.1 304 Not Modified" and body == b""


async def test_gzip_when_accepted(served: tuple[int, Site]) -> None:
    port, _ = served
    ((_, headers, body),) = await exchange(
        port, get("/static/uPlot.iife.min.js", extra="Accept-Encoding: gzip, br\r\n")
    )
    assert headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == (STATIC / "uPlot.iife.min.js").read_bytes()


async def test_oversized_or_bodied_requests_are_refused(served: tuple[int, Site]) -> None:
    port, _ = served
    huge = get("/", extra=f"X-Pad: {'a' * MAX_HEAD}\r\n")
    ((line, _, _),) = await exchange(port, huge)
    assert line.startswith("HTTP/1.1 431")
    post = b"POST /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}"
    ((line, headers, _),) = await exchange(port, post)
    assert line.startswith("HTTP/1.1 405") and headers["connection"] == "close"
    ((line, _, _),) = await exchange(port, b"GARBAGE\r\n\r\n")
    assert line.startswith("HTTP/1.1 400")


async def test_unknown_paths_are_404(served: tuple[int, Site]) -> None:
    port, _ = served
    for path in ("/favicon.ico", "/static/../server.py", "/api/v1/nothing", "/static/nope.js"):
        ((line, _, _),) = await exchange(port, get(path))
        assert line.startswith("HTTP/1.1 404"), path


async def test_cancel_frees_the_port(tmp_path: Path) -> None:
    port = free_port()
    worker = Worker()
    store = await worker.run(SignalStore.open, tmp_path / "twin.db", TwinConfig())
    site = Site(AgentConfig(), AgentCollector(AgentView("gw")), store, worker.run,
                StoredAlerts(tmp_path / "outbox.db"))  # fmt: skip
    try:
        for _ in range(2):  # the second start binds the port the first one freed
            task = asyncio.create_task(
                serve_web_forever(WebConfig(listen=f"127.0.0.1:{port}"), site, None)
            )
            await _connectable(port)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await worker.run(store.close)
        worker.close()


async def test_busy_port_logged_once(
    served: tuple[int, Site], caplog: pytest.LogCaptureFixture
) -> None:
    port, site = served
    task = asyncio.create_task(serve_web_forever(WebConfig(listen=f"127.0.0.1:{port}"), site, None))
    with caplog.at_level(logging.ERROR):
        await asyncio.sleep(1.5)  # the first retry comes within the backoff's first second
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len([r for r in caplog.records if "cannot listen" in r.message]) == 1


def test_page_weight_and_no_inline_code() -> None:
    html = (STATIC / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert not re.search(r"\sstyle=|\son[a-z]+=", html), "inline style or handler"
    referenced = re.findall(r'(?:src|href)="/static/([^"]+)"', html)
    total = len(html.encode()) + sum((STATIC / name).stat().st_size for name in referenced)
    assert {"app.js", "app.css", "uPlot.iife.min.js", "uPlot.min.css"} <= set(referenced)
    assert total < 250_000, total
    assert set(load_static()) >= set(referenced)
    assert "MIT License" in (STATIC / "uPlot.LICENSE.txt").read_text()
