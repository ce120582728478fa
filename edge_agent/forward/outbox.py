"""PLACEHOLDER: being written. Durable outbox."""

from __future__ import annotations

from edge_agent.schema import Size, StrictModel


class OutboxConfig(StrictModel):
    """Config of the outbox."""

    path: str = "outbox.db"
    max_rows: int = 100_000
    max_bytes: Size = 50_000_000
