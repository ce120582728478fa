"""PLACEHOLDER: being written. Detector."""

from __future__ import annotations

from edge_agent.schema import Duration, StrictModel


class DetectConfig(StrictModel):
    """Config of detection."""

    interval: Duration = 1.0
