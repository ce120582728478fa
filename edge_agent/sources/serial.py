"""PLACEHOLDER: being written. serial source."""

from __future__ import annotations

from typing import Literal

from edge_agent.schema import Duration, StrictModel


class SerialSourceConfig(StrictModel):
    """Config of a serial source."""

    type: Literal["serial"]
    name: str
    interval: Duration = 1.0
    asset: str = ""
