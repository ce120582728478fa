"""PLACEHOLDER: being written. HTTPS sink."""

from __future__ import annotations

from typing import Literal

from edge_agent.schema import StrictModel


class HttpSinkConfig(StrictModel):
    """Config of an HTTPS sink."""

    type: Literal["http"]
    name: str
    url: str
