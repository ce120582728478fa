"""HTTPS sink (httpx): POSTs JSON batches to a webhook or maintenance system.

The body is ``{"v": 1, "items": [<payload>, ...]}`` where each item is one
payload of :mod:`edge_agent.forward.encode` (consumers dedupe on ``event_id``).
A 2xx response acknowledges the batch; 5xx, 408, 429, redirects and network
errors or timeouts keep it for a retry; any other 4xx rejects it (dropped,
counted, logged with the response body), since sending it again cannot help.

Secrets: a token, a header or credentials in the URL are refused at config time
over plain ``http://`` unless the host is a loopback address (a local relay). URLs
are logged without credentials, query string or fragment; a refusal's body is cut
to one line of :data:`_BODY_SHOWN` characters with every secret value replaced.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Self
from urllib.parse import urlsplit

from pydantic import SecretStr

from edge_agent.errors import DeliveryError, RejectedError
from edge_agent.forward.outbox_rows import Record
from edge_agent.logs import redact_url

if TYPE_CHECKING:
    import httpx
from edge_agent.forward.config import HttpSinkConfig

_RETRY_4XX = {408, 429}
_BODY_SHOWN = 500  # characters of a refusal's response body put in the log


def batch_body(batch: Sequence[Record]) -> bytes:
    """The POST body: the payloads spliced into one JSON object, without re-encoding."""
    return b'{"v":1,"items":[' + b",".join(record.body for record in batch) + b"]}"


class HttpSink:
    """POSTs outbox batches as JSON to ``url``.

    Args:
        config: the sink's config.
        gateway: this gateway's id, sent as header ``X-Edge-Agent-Gateway``.
    """

    def __init__(self, config: HttpSinkConfig, gateway: str = "edge-agent") -> None:
        self.config = config
        self.gateway = gateway
        self._client: httpx.AsyncClient | None = None
        self._where = redact_url(config.url)

    @property
    def name(self) -> str:
        """The sink's name."""
        return self.config.name

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.config.ca_file)
        if self.config.tls == "no-verify":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.config.cert_file:
            context.load_cert_chain(self.config.cert_file, self.config.key_file)
        return context

    def _headers(self) -> dict[str, str]:
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        headers["Content-Type"] = "application/json"
        headers["X-Edge-Agent-Gateway"] = self.gateway
        if self.config.token is not None:
            headers["Authorization"] = f"Bearer {self.config.token.get_secret_value()}"
        return headers

    async def __aenter__(self) -> Self:
        """Create the HTTP client (connections are opened on demand)."""
        import httpx

        try:
            context = self._context()
        except (OSError, ssl.SSLError) as exc:
            raise DeliveryError(f"{self.name}: cannot load TLS files: {exc}") from exc
        self._client = httpx.AsyncClient(
            verify=context, timeout=self.config.timeout, headers=self._headers()
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the client's connections."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def send(self, batch: Sequence[Record]) -> None:
        """POST the batch.

        Raises:
            DeliveryError: network error, timeout, 5xx, 408, 429 or a redirect (kept).
            RejectedError: any other non-2xx status (dropped and counted).
        """
        import httpx

        if self._client is None:
            raise DeliveryError(f"{self.name}: send() outside 'async with'")
        try:
            response = await self._client.post(self.config.url, content=batch_body(batch))
        except httpx.TimeoutException as exc:
            raise DeliveryError(
                f"{self.name}: no answer from {self._where} within {self.config.timeout} s"
            ) from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(self._explain(exc)) from exc
        _check(self.name, response, self._secrets())

    def _secrets(self) -> list[str]:
        """Values that must never reach a log line."""
        values = [v.get_secret_value() for v in self.config.headers.values()]
        if self.config.token is not None:
            values.append(self.config.token.get_secret_value())
        parts = urlsplit(self.config.url)
        values += [p for p in (parts.password, parts.query) if p]
        return [v for v in values if len(v) >= 4]  # shorter ones would mask ordinary words

    def _explain(self, exc: Exception) -> str:
        where = f"{self.name}: POST {self._where} failed"
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            ca = self.config.ca_file or "the system CA store"
            return f"{where}: server certificate not trusted by {ca}: {exc}"
        return f"{where}: {redact(repr(exc), self._secrets())}"


_KEYED = re.compile(
    r"(?i)\b(authorization|access_token|token|api[-_]?key|password|secret)"
    r"([\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic)\s+)?[^\s,;\"'&}]+"
)
_SCHEMED = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


def redact(text: str, secrets: Sequence[str | SecretStr]) -> str:
    """``text`` with every secret value, and anything shaped like a credential, as ``***``."""
    for secret in secrets:
        value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        text = text.replace(value, "***")
    text = _KEYED.sub(lambda m: f"{m[1]}{m[2]}***", text)
    return _SCHEMED.sub(lambda m: f"{m[1]} ***", text)


def _check(name: str, response: httpx.Response, secrets: Sequence[str]) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    text = " ".join(redact(response.text, secrets).split())
    if len(text) > _BODY_SHOWN:
        text = text[:_BODY_SHOWN] + f"... ({len(response.text):,} characters)"
    message = f"{name}: HTTP {status} {response.reason_phrase}: {text}"
    if 400 <= status < 500 and status not in _RETRY_4XX:
        raise RejectedError(message)
    raise DeliveryError(message)
