"""The ``twin:`` section: where the edge twin lives, how much it keeps, how it syncs."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from edge_agent.schema import Duration, Size, StrictModel

MINUTE = 60.0
"""Seconds per rollup bucket."""


class TwinConfig(StrictModel):
    """Config of the twin store (the ``twin:`` section)."""

    path: str = "twin.db"
    flush_interval: Duration = Field(default=1.0, gt=0)
    max_samples: int = Field(default=10_000, ge=1, le=10_000_000)
    max_age: Duration = Field(default=7 * 86400.0, gt=0)
    rollup_max_age: Duration = Field(default=14 * 86400.0, ge=60)
    sync: Literal["normal", "full", "extra"] = "full"
    stale_factor: float = Field(default=3.0, gt=0)
    max_size: Size | None = Field(default=None, ge=64 * 1024)

    def rollup_slots(self) -> int:
        """Minutes of rollups kept per signal: ``rollup_max_age`` plus the current one."""
        return math.ceil(self.rollup_max_age / MINUTE) + 1
