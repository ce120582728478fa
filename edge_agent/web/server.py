"""The site view's server task: the page, the JSON API and ``/metrics`` on one port.

:func:`serve_web_forever` runs as a task of the agent's TaskGroup. It serves:

* ``/`` and ``/static/...``: the page, every asset from the wheel (no CDN);
* ``/api/v1/...``: the read-only JSON API (:mod:`edge_agent.web.openapi`);
* ``/metrics``: the Prometheus text of :mod:`edge_agent.metrics`.

Access. With a token configured, every API and ``/metrics`` request needs
``Authorization: Bearer <token>`` (the page asks for it once and keeps it in the
tab's session storage); the page's static files carry no data and are served
without. Without a token the server only listens on loopback (the config
refuses anything else) and answers only requests whose ``Host`` is a loopback
name, so a web page elsewhere cannot read the API through DNS rebinding.

Cost when nobody looks: nothing. No timer runs here; the outbox snapshot behind
``/metrics`` and ``/api/v1/status`` is re-read only when a request finds it
older than ``metrics.refresh``; ``/api/v1/signals`` is built and gzipped at
most once per half second however many browsers poll it.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import hmac
import json
import logging
import time
from typing import Any

from edge_agent.backoff import Backoff
from edge_agent.exposition import CONTENT_TYPE
from edge_agent.logs import Transition
from edge_agent.metrics import exposition
from edge_agent.schema import is_loopback, parse_duration
from edge_agent.web.config import WebConfig, parse_listen
from edge_agent.web.http import BadRequest, HttpServer, Request, Response, accepts_gzip
from edge_agent.web.site import Site

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), usb=(), serial=()",
}
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
SIGNALS_TTL = 0.5
"""Seconds one built ``/api/v1/signals`` answer is reused (the twin flushes every 1 s)."""


def load_static() -> dict[str, tuple[bytes, str, str]]:
    """Every file of ``edge_agent/web/static``: name -> (bytes, content type, ETag)."""
    from importlib import resources  # with tempfile and its kin: 0.5 MB nobody looking needs

    files = {}
    for item in resources.files("edge_agent.web").joinpath("static").iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1]
        if item.is_file() and suffix in TYPES:
            body = item.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            files[item.name] = (body, TYPES[suffix], etag)
    return files


class Routes:
    """Request -> response for the site view.

    Args:
        site: the live agent's data.
        token: the bearer token required on the API and /metrics (None: none).
        loopback_only: answer only requests whose Host is a loopback name.
    """

    def __init__(self, site: Site, token: str | None, loopback_only: bool) -> None:
        self.site = site
        self.token = token
        self.loopback_only = loopback_only
        self._signals: tuple[float, bytes, bytes] = (0.0, b"", b"")
        self._signals_lock = asyncio.Lock()

    @functools.cached_property
    def static(self) -> dict[str, tuple[bytes, str, str]]:
        """The page's files, read at the first request for one (a site nobody opens: none)."""
        return load_static()

    @functools.cached_property
    def openapi(self) -> bytes:
        """The API's OpenAPI document, built at the first request for it."""
        from edge_agent.web.openapi import document

        return json.dumps(document()).encode()

    async def __call__(self, request: Request) -> Response:
        """Dispatch one request."""
        if self.loopback_only and not _loopback_host(request.headers.get("host", "")):
            return _json({"error": "this server answers loopback names only"}, 421)
        path = request.path
        if path in ("/", "/index.html"):
            return self._file("index.html", request)
        if path.startswith("/static/"):
            return self._file(path.removeprefix("/static/"), request)
        if path == "/api/v1/openapi.json":
            return Response(200, self.openapi, headers={"Cache-Control": "no-cache"})
        if path != "/metrics" and not path.startswith("/api/v1/"):
            return _json({"error": "not found"}, 404)
        if not self._authorised(request):
            return _json({"error": "missing or wrong bearer token"}, 401, bearer=True)
        if path == "/metrics":
            return await self._metrics()
        return await self._api(path.removeprefix("/api/v1/"), request)

    async def _metrics(self) -> Response:
        await self.site.snapshot_fresh()
        return Response(200, exposition(self.site.collector), CONTENT_TYPE)

    def _authorised(self, request: Request) -> bool:
        if self.token is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode())

    def _file(self, name: str, request: Request) -> Response:
        found = self.static.get(name)
        if found is None:
            return _json({"error": "not found"}, 404)
        body, content_type, etag = found
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == etag:
            return Response(304, b"", content_type, headers)
        return Response(200, body, content_type, headers)

    async def _api(self, path: str, request: Request) -> Response:
        site = self.site
        if path == "status":
            return _json(await site.status())
        if path == "signals":
            return await self._signals_response(request)
        if path == "assets":
            return _json(await site.assets())
        if path == "alerts":
            state = request.query.get("state", "open")
            if state not in ("open", "all"):
                raise BadRequest(400, "state must be open or all")
            return _json(await site.alert_list(state))
        if path == "config":
            return _json(site.effective_config())
        if path.startswith("signals/") and path.endswith("/history"):
            return await self._history(path.removeprefix("signals/")[: -len("/history")], request)
        return _json({"error": "not found"}, 404)

    async def _signals_response(self, request: Request) -> Response:
        """Built, and gzipped, at most once per :data:`SIGNALS_TTL` however many pages poll."""
        async with self._signals_lock:
            built, body, packed = self._signals
            if time.monotonic() - built > SIGNALS_TTL:
                body = json.dumps(await self.site.signals()).encode()
                packed = gzip.compress(body, compresslevel=1, mtime=0)
                self._signals = (time.monotonic(), body, packed)
        headers = {"Cache-Control": "no-store"}
        if accepts_gzip(request):
            headers |= {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
            return Response(200, packed, headers=headers)
        return Response(200, body, headers=headers)

    async def _history(self, name: str, request: Request) -> Response:
        now = time.time()
        since = _when(request.query.get("since", "1h"), now, "since")
        until_text = request.query.get("until")
        until = None if until_text is None else _when(until_text, now, "until")
        rollups = request.query.get("rollups", "false") == "true"
        found = await self.site.history(name, since, until, rollups)
        if found is None:
            return _json({"error": f"no signal {name!r}"}, 404)
        return _json(found)


def _when(text: str, now: float, what: str) -> float:
    """Unix seconds from ``1700000000.5`` or a duration back from now (``1h``)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return now - parse_duration(text)
    except ValueError:
        raise BadRequest(400, f"{what}: expected Unix seconds or a duration (1h)") from None


def _loopback_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return is_loopback(name.strip("[]"))


def _json(data: Any, status: int = 200, bearer: bool = False) -> Response:
    headers = {"Cache-Control": "no-store"}
    if bearer:
        headers["WWW-Authenticate"] = 'Bearer realm="edge-agent"'
    return Response(status, json.dumps(data).encode(), headers=headers)


async def serve_web_forever(config: WebConfig, site: Site, token: str | None) -> None:
    """Serve the site view on ``config.listen`` until cancelled (returns at once when off).

    A port that cannot be bound is logged once and retried with backoff: the page
    is optional and must never stop data collection.
    """
    if not config.listen:
        return
    host, port = parse_listen(config.listen)
    routes = Routes(site, token, loopback_only=token is None)
    http = HttpServer(routes, SECURITY_HEADERS)
    server = await _bind_forever(http, host, port, config.listen)
    try:
        await asyncio.Future()  # until cancelled
    finally:
        server.close()
        http.close_connections()


async def _bind_forever(http: HttpServer, host: str, port: int, listen: str) -> asyncio.Server:
    backoff = Backoff(initial=1.0, cap=60.0)
    binding = Transition(log)
    while True:
        try:
            server = await http.start(host, port)
        except OSError as exc:
            binding.fail("web: cannot listen on %s, will retry: %s", listen, exc)
            await asyncio.sleep(backoff.next_delay())
            continue
        log.info("web: serving http://%s/", listen)
        return server
