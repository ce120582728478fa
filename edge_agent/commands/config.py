"""Config of device writes: the ``writes:`` section and a signal's ``write:`` block.

Config models only (no runtime import): the source configs import
:class:`WriteLimits` for the ``write:`` block of a register or node.
"""

from __future__ import annotations

import math
from typing import Self

from pydantic import Field, model_validator

from edge_agent.schema import Duration, OnOff, StrictModel


class WritesConfig(StrictModel):
    """The ``writes:`` section: the agent-wide switch and limits of device writes.

    Attributes:
        mode: ``off`` (default) refuses every write command, whatever the signals
            allow; ``on`` lets commands write the signals that have a ``write:`` block.
        min_interval: the rate limit: least time between two writes to one signal
            (a signal's own ``write.min_interval`` overrides it).
        max_age: a command whose ``ts`` is older than this is refused as expired
            (a command queued by a broker while the agent was away is stale).
    """

    mode: OnOff = "off"
    min_interval: Duration = 1.0
    max_age: Duration = Field(default=30.0, gt=0)


class WriteLimits(StrictModel):
    """A signal's ``write:`` block: it makes the signal writable, within limits.

    Values are in the signal's engineering unit (after ``scale`` and ``offset``).

    Attributes:
        min: the smallest value a command may write (required for numbers).
        max: the largest value a command may write (required for numbers).
        min_interval: this signal's rate limit (default ``writes.min_interval``).
    """

    min: float | None = None
    max: float | None = None
    min_interval: Duration | None = None

    @model_validator(mode="after")
    def _range(self) -> Self:
        for bound in (self.min, self.max):
            if bound is not None and not math.isfinite(bound):
                raise ValueError("write min and max must be finite numbers")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"write min ({self.min}) is above max ({self.max})")
        return self

    def needs_range(self, what: str) -> None:
        """Raise ValueError unless both bounds are given (numeric values need a range).

        Raises:
            ValueError: ``min`` or ``max`` missing; ``what`` names the value type.
        """
        if self.min is None or self.max is None:
            raise ValueError(f"a writable {what} needs write.min and write.max")
