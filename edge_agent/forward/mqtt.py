"""PLACEHOLDER: being written. MQTT sink."""

from __future__ import annotations

from typing import Literal

from edge_agent.schema import StrictModel


class MqttSinkConfig(StrictModel):
    """Config of an MQTT sink."""

    type: Literal["mqtt"]
    name: str
    host: str
    port: int = 8883
