"""PLACEHOLDER: being written. modbus source."""

from __future__ import annotations

from typing import Literal

from edge_agent.schema import Duration, StrictModel


class ModbusSourceConfig(StrictModel):
    """Config of a modbus source."""

    type: Literal["modbus"]
    name: str
    interval: Duration = 1.0
    asset: str = ""
