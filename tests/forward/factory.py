"""Alerts and summaries for the forward tests."""

from __future__ import annotations

from edge_agent.forward.encode import TelemetrySummary
from edge_agent.types import Alert, AlertKind, AlertState, Severity, alert_id


def make_alert(n: int, asset: str = "press1", state: AlertState = AlertState.RAISED) -> Alert:
    """Alert number ``n`` of ``asset`` (its id depends on both)."""
    return Alert(
        id=alert_id(asset, f"rule{n}", 1_700_000_000.0 + n),
        asset=asset,
        kind=AlertKind.RULE,
        cause=f"rule{n}",
        severity=Severity.WARNING,
        state=state,
        signals=("plc.temp",),
        score=80.0 + n,
        threshold=75.0,
        window_start=1_700_000_000.0 + n,
        window_end=1_700_000_010.0 + n,
        reason=f"temperature high ({n})",
    )


def make_summary(n: int, end: float, signal: str = "plc.temp") -> TelemetrySummary:
    """Summary number ``n`` of ``signal`` ending at ``end``."""
    return TelemetrySummary(
        signal=signal,
        asset="press1",
        start=end - 60,
        end=end,
        count=60,
        bad=0,
        min=float(n),
        max=float(n + 2),
        mean=float(n + 1),
        last=float(n + 1),
        unit="degC",
    )
