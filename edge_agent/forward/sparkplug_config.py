"""Config of the ``sparkplug`` sink (a Sparkplug B 3.0 edge node)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_agent.forward.brokers import Broker, parse_broker
from edge_agent.forward.config import SinkSettings
from edge_agent.schema import ConfigPath, Duration, OnOff, Secret, switch

_SPARKPLUG_ID = r"^[^+/#]+$"
"""Group, edge node and host ids: any UTF-8 but the MQTT separators and wildcards."""


class SparkplugSinkConfig(SinkSettings):
    """Config of a Sparkplug B edge node sink.

    Attributes:
        servers: the MQTT brokers (one, or a cluster's), walked on failure.
        port: port of a ``servers`` entry that names none.
        group_id: the Sparkplug group this edge node belongs to.
        edge_node_id: this edge node's id (default: ``agent.id``).
        primary_host: the Primary Host Application id; when set, births wait for its
            ``STATE`` online, and its offline makes the node leave for the next broker.
        deadband: change smaller than this (absolute, in the signal's unit) is not sent live.
        deadbands: per-signal deadbands, overriding ``deadband``.
        data_interval: live changes are gathered for this long into one DDATA per device.
        state_file: where bdSeq is kept across restarts (relative to ``agent.data_dir``;
            default ``sparkplug-<name>.json``).
        commands: ``on`` takes metric writes from NCMD / DCMD (see
            :mod:`edge_agent.forward.sparkplug_commands`); ``off`` ignores them.
    """

    type: Literal["sparkplug"]
    servers: list[str] = Field(min_length=1)
    port: int = Field(default=8883, ge=1, le=65535)
    group_id: str = Field(pattern=_SPARKPLUG_ID)
    edge_node_id: str = Field(default="", pattern=r"^[^+/#]*$")
    primary_host: str | None = Field(default=None, pattern=_SPARKPLUG_ID)
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    client_id: str = ""
    tls: Annotated[Literal["verify", "no-verify", "off"], switch] = "verify"
    ca_file: ConfigPath | None = None
    cert_file: ConfigPath | None = None
    key_file: ConfigPath | None = None
    username: str | None = None
    password: Secret | None = None
    keepalive: Duration = 30.0
    timeout: Duration = 10.0
    deadband: float = Field(default=0.0, ge=0)
    deadbands: dict[str, float] = Field(default_factory=dict)
    data_interval: Duration = Field(default=1.0, ge=0)
    state_file: str = ""
    commands: OnOff = "off"
    telemetry: OnOff = "on"
    """Summaries are the store-and-forward channel of values: on by default here."""

    @model_validator(mode="after")
    def _check(self) -> SparkplugSinkConfig:
        self.brokers()
        negative = [name for name, band in self.deadbands.items() if band < 0]
        if negative:
            raise ValueError(f"deadbands must not be negative: {negative}")
        return self

    def brokers(self) -> list[Broker]:
        """The brokers to walk, in order."""
        return [parse_broker(e, self.port, self.tls != "off") for e in self.servers]
