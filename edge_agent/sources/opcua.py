"""PLACEHOLDER: being written. opcua source."""

from __future__ import annotations

from typing import Literal

from edge_agent.schema import Duration, StrictModel


class OpcuaSourceConfig(StrictModel):
    """Config of a opcua source."""

    type: Literal["opcua"]
    name: str
    interval: Duration = 1.0
    asset: str = ""
