"""PLACEHOLDER: being written. JSONL file sink."""

from __future__ import annotations

from typing import Literal

from edge_agent.schema import StrictModel


class JsonlSinkConfig(StrictModel):
    """Config of a JSONL file sink."""

    type: Literal["jsonl"]
    name: str
    path: str
