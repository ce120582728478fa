"""The ``outbox:`` and ``sinks:`` config models, apart from the sinks' code.

Config models only, so loading a config never imports aiomqtt or httpx.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from edge_agent.forward.brokers import Broker, parse_broker
from edge_agent.logs import redact_url
from edge_agent.schema import (
    ConfigPath,
    Duration,
    OnOff,
    Secret,
    Size,
    StrictModel,
    is_loopback,
    switch,
)

if TYPE_CHECKING:
    pass


_TEMPLATE_KEYS = {"gateway", "asset"}


class OutboxConfig(StrictModel):
    """Config of the outbox (``outbox:`` section).

    Attributes:
        path: SQLite file, relative to ``agent.data_dir``.
        max_rows: most rows kept per sink.
        max_size: most bytes kept per sink (payload plus a fixed row overhead).
        historical_after: telemetry delivered this long after its window ended is
            marked ``historical`` (a backfill after an outage).
        sync: ``full`` fsyncs every commit (survives power loss); ``normal`` survives
            a crash of the process but may lose the last commits on power loss.
    """

    path: str = "outbox.db"
    max_rows: int = Field(default=100_000, ge=1)
    max_size: Size = 50_000_000
    historical_after: Duration = 120.0
    sync: Literal["full", "normal"] = "full"


class SinkSettings(StrictModel):
    """Keys every sink has (the delivery loop reads them).

    Attributes:
        name: the sink's name (its rows in the outbox carry it).
        batch_size: most messages taken from the outbox per send.
        backoff: first delay after a failed delivery.
        backoff_max: cap of the exponential backoff.
        telemetry: ``on`` to also forward periodic per-signal summaries.
        telemetry_interval: the span each summary covers (windows are aligned to it).
    """

    name: str
    batch_size: int = Field(default=500, ge=1, le=10_000)
    backoff: Duration = 1.0
    backoff_max: Duration = 60.0
    telemetry: OnOff = "off"
    telemetry_interval: Duration = Field(default=60.0, gt=0)


class MqttSinkConfig(SinkSettings):
    """Config of an MQTT sink.

    Topics are templates with ``{gateway}`` (``agent.id``) and ``{asset}``. The broker is
    ``host``/``port``, or a cluster's ``servers`` walked on failure (see
    :mod:`edge_agent.forward.brokers`). With ``commands: on`` the sink takes write
    commands on ``command_topic`` and answers on ``reply_topic``; audit events of
    commands go to ``audit_topic`` (see :mod:`edge_agent.commands.message`).
    """

    type: Literal["mqtt"]
    host: str | None = None
    servers: list[str] = Field(default_factory=list)
    port: int = Field(default=8883, ge=1, le=65535)
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    client_id: str = ""
    session: Literal["persistent", "clean"] = "persistent"
    session_expiry: Duration = 7 * 86400.0
    tls: Annotated[Literal["verify", "no-verify", "off"], switch] = "verify"
    ca_file: ConfigPath | None = None
    cert_file: ConfigPath | None = None
    key_file: ConfigPath | None = None
    username: str | None = None
    password: Secret | None = None
    keepalive: Duration = 30.0
    timeout: Duration = 10.0
    max_inflight: int = Field(default=100, ge=1, le=65535)
    topic: str = "edge-agent/{gateway}/alerts/{asset}"
    telemetry_topic: str = "edge-agent/{gateway}/telemetry/{asset}"
    notice_topic: str = "edge-agent/{gateway}/notice"
    status_topic: str = "edge-agent/{gateway}/status"
    commands: OnOff = "off"
    command_topic: str = "edge-agent/{gateway}/cmd"
    reply_topic: str = "edge-agent/{gateway}/cmd/reply"
    audit_topic: str = "edge-agent/{gateway}/audit"
    prognosis_topic: str = "edge-agent/{gateway}/prognosis/{asset}"

    @field_validator(
        "topic", "telemetry_topic", "notice_topic", "status_topic", "command_topic",
        "reply_topic", "audit_topic", "prognosis_topic",
    )  # fmt: skip
    @classmethod
    def _template(cls, value: str) -> str:
        keys = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        unknown = keys - _TEMPLATE_KEYS
        if unknown:
            raise ValueError(f"unknown placeholder {sorted(unknown)}; use {{gateway}}, {{asset}}")
        if "+" in value or "#" in value:
            raise ValueError("a topic to publish to cannot hold the wildcards + or #")
        return value

    @model_validator(mode="after")
    def _one_broker_key(self) -> MqttSinkConfig:
        if (self.host is None) == (not self.servers):
            raise ValueError("give either host (one broker) or servers (a list), not both")
        self.brokers()  # every entry must parse
        return self

    def brokers(self) -> list[Broker]:
        """The brokers to walk, in order (``host`` alone is a list of one)."""
        entries = self.servers or [str(self.host)]
        return [parse_broker(e, self.port, self.tls != "off") for e in entries]


class HttpSinkConfig(SinkSettings):
    """Config of an HTTPS sink.

    Attributes:
        url: where to POST (``https://``; ``http://`` only for a local receiver).
        headers: extra request headers; values are secrets (use ``${ENV_VAR}``).
        token: bearer token (``Authorization: Bearer ...``), e.g. ``${CMMS_TOKEN}``.
        tls: ``verify`` (default) checks the server certificate; ``no-verify`` does not.
        ca_file: CA bundle for the server certificate (default: the system store).
        cert_file: client certificate (PEM), for mutual TLS.
        key_file: its private key.
        timeout: per-request timeout; a timeout keeps the batch for a retry.
    """

    type: Literal["http"]
    url: str
    headers: dict[str, Secret] = Field(default_factory=dict)
    token: Secret | None = None
    tls: Annotated[Literal["verify", "no-verify"], switch] = "verify"
    ca_file: ConfigPath | None = None
    cert_file: ConfigPath | None = None
    key_file: ConfigPath | None = None
    timeout: Duration = 10.0
    batch_size: int = Field(default=100, ge=1, le=10_000)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("url must start with https:// (or http:// for a local receiver)")
        parts = urlsplit(value)
        if (parts.username or parts.password) and not _safe_to_send(value):
            raise ValueError(
                "credentials in an http:// URL would cross the network in clear text:"
                " use https:// (http:// only to a loopback address)"
            )
        return value

    @field_validator("headers", "token")
    @classmethod
    def _not_in_clear(cls, value: object, info: ValidationInfo) -> object:
        url = info.data.get("url")
        if value and isinstance(url, str) and not _safe_to_send(url):
            what = "a bearer token" if info.field_name == "token" else "secret headers"
            raise ValueError(
                f"{what} would cross the network in clear text to {redact_url(url)}:"
                " use https:// (http:// only to a loopback address such as 127.0.0.1)"
            )
        return value


def _safe_to_send(url: str) -> bool:
    """https://, or http:// to a loopback host (the secret never leaves the machine)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    return is_loopback((parts.hostname or "").lower())


class JsonlSinkConfig(SinkSettings):
    """Config of a JSONL file sink.

    Attributes:
        path: the file to append to (created with its folder if missing).
    """

    type: Literal["jsonl"]
    path: str
