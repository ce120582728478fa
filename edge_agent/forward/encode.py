"""The versioned JSON payload that leaves the gateway (version 1).

Every message is one JSON object with ``"v": 1`` and a ``"type"``:

``alert``
    The alert event (see :meth:`edge_agent.types.Alert.to_dict`) plus ``gateway``,
    ``event_id`` (``"<id>:<state>"`` for a raise or clear, ``"<id>:<state>:<n>"``
    for the n-th update of an open alert (severity, acknowledged, shelved,
    unshelved): the idempotency key; a redelivery carries the same one) and
    ``seq`` (per sink, consecutive from 1: a gap means a lost message; drops are
    also announced by a ``notice``).
``telemetry``
    A per-signal summary over ``[start, end)``: count, bad, min, max, mean, last;
    ``historical: true`` when it is delivered late (a backfill after an outage).
``notice``
    Store-and-forward housekeeping: ``dropped`` holds the running totals of rows
    the outbox had to drop for this sink (``alert``, ``telemetry``; ``command`` once
    audit events of commands were dropped). Or ``lost``: the outbox file was found
    damaged at start and replaced; ``file`` names the copy kept aside, ``reason`` the
    damage, ``alert`` and ``telemetry`` the rows that were waiting in it (null where
    the damaged file could not tell).
``command``
    The audit event of a write command (see :mod:`edge_agent.commands.message`).
``status``
    The retained birth / last-will message: ``state`` is ``online`` or ``offline``.
``prognosis``
    An asset's remaining useful life (see :mod:`edge_agent.detect.prognosis`):
    ``asset``, ``ts``, ``method`` (``model`` or ``trend``), ``rul`` in ``unit``
    (null when a trend does not fall), ``low``/``high`` (the trend's interval;
    ``high`` null when unbounded). A model adds ``model``, ``model_version``,
    ``cap`` and ``at_cap`` (true: "at least ``cap``"); a trend adds ``health``,
    ``alarm_health``, ``slope_per_hour``, ``points`` and ``window`` (seconds).
    Sent every ``prognosis.every`` per asset, like telemetry (dropped first
    when a backlog is over its bound; ``historical`` when delivered late).

Keys may be added within version 1; a key is never removed or changed in meaning
without bumping ``v``. Non-finite floats become ``null`` (strict JSON).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from edge_agent.types import Alert, AlertState

VERSION = 1


@dataclass(frozen=True, slots=True)
class TelemetrySummary:
    """A periodic summary of one signal over ``[start, end)``.

    Attributes:
        signal: the signal name.
        asset: the asset it belongs to ("" when none).
        start: window start, epoch seconds.
        end: window end, epoch seconds.
        count: GOOD or UNCERTAIN samples in the window.
        bad: BAD samples in the window.
        min: smallest value (None without values).
        max: largest value.
        mean: arithmetic mean.
        last: last value.
        unit: engineering unit, if known.
    """

    signal: str
    asset: str
    start: float
    end: float
    count: int
    bad: int
    min: float | None
    max: float | None
    mean: float | None
    last: float | None
    unit: str = ""


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _dumps(data: dict[str, Any]) -> bytes:
    clean = {key: _finite(value) for key, value in data.items()}
    return json.dumps(clean, separators=(",", ":"), allow_nan=False).encode()


def encode_alert(alert: Alert, gateway: str) -> bytes:
    """The payload of one alert event (without ``seq``, added at take time)."""
    body = alert.to_dict()
    return _dumps(
        {
            "v": VERSION,
            "type": "alert",
            "gateway": gateway,
            "event_id": event_id(alert),
            **body,
        }
    )


def encode_prognosis(fields: dict[str, Any], gateway: str) -> bytes:
    """The payload of one prognosis (``fields``: ``Prognosis.to_dict()``)."""
    return _dumps({"v": VERSION, "type": "prognosis", "gateway": gateway, **fields})


def event_id(alert: Alert) -> str:
    """The idempotency key of one alert event (unique per distinct event)."""
    if alert.state in (AlertState.RAISED, AlertState.CLEARED):
        return f"{alert.id}:{alert.state}"
    return f"{alert.id}:{alert.state}:{alert.extra.get('update', 0)}"


def encode_telemetry(summary: TelemetrySummary, gateway: str) -> bytes:
    """The payload of one telemetry summary."""
    return _dumps(
        {
            "v": VERSION,
            "type": "telemetry",
            "gateway": gateway,
            "signal": summary.signal,
            "asset": summary.asset,
            "start": summary.start,
            "end": summary.end,
            "count": summary.count,
            "bad": summary.bad,
            "min": summary.min,
            "max": summary.max,
            "mean": summary.mean,
            "last": summary.last,
            "unit": summary.unit,
        }
    )


def encode_notice(
    gateway: str, dropped_alerts: int, dropped_telemetry: int, ts: float, dropped_commands: int = 0
) -> bytes:
    """The payload announcing how many rows the outbox dropped (running totals)."""
    return _dumps(
        {
            "v": VERSION,
            "type": "notice",
            "gateway": gateway,
            "ts": ts,
            "dropped": {"alert": dropped_alerts, "telemetry": dropped_telemetry}
            | ({"command": dropped_commands} if dropped_commands else {}),
        }
    )


def encode_loss(gateway: str, ts: float, lost: dict[str, Any]) -> bytes:
    """The payload announcing that a damaged outbox was replaced and its rows lost."""
    return _dumps({"v": VERSION, "type": "notice", "gateway": gateway, "ts": ts, "lost": lost})


def encode_status(gateway: str, state: str, ts: float) -> bytes:
    """The retained birth (``online``) or last-will (``offline``) payload."""
    return _dumps({"v": VERSION, "type": "status", "gateway": gateway, "state": state, "ts": ts})


def with_fields(body: bytes, **fields: Any) -> bytes:
    """Add fields to an encoded payload without decoding it.

    Cheap because the payload is a compact JSON object: the fields are spliced in
    before the closing brace.
    """
    extra = json.dumps(fields, separators=(",", ":"), allow_nan=False).encode()
    return body[:-1] + b"," + extra[1:]


def decode(body: bytes) -> dict[str, Any]:
    """Parse one payload (for tests and consumers written in Python)."""
    data = json.loads(body)
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise ValueError(f"not a version {VERSION} edge-agent payload: {body[:80]!r}")
    return data
