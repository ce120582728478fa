"""PLACEHOLDER: being written. SQLite twin store."""

from __future__ import annotations

from edge_agent.schema import Duration, StrictModel


class TwinConfig(StrictModel):
    """Config of the twin store."""

    path: str = "twin.db"
    flush_interval: Duration = 1.0
    max_samples: int = 10_000
    max_age: Duration = 7 * 86400.0
