"""Metric writes from a Sparkplug host (NCMD / DCMD), and the metrics that answer them.

A host writes a signal by sending a DCMD to the device the signal is born on, with
the signal's metric name and the new value (Ignition: writing the tag). The node
runs it as a command (policy, write, read-back; :mod:`edge_agent.commands`) and
answers with one DDATA on that device (NDATA for an NCMD) that carries the signal's
metric (the value read back, or its current value when nothing was written) and
the ``Command/*`` metrics: ``Id``, ``Metric``, ``Status`` (done / refused / failed),
``Reason``, ``Value`` (asked) and ``Read Back``. With ``commands: on`` every device's
DBIRTH and the NBIRTH carry these metrics (null until the first command).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from edge_agent.commands.policy import Command, Reply
from edge_agent.forward.sparkplug_payload import DOUBLE, STRING, MetricValue

COMMAND_FIELDS = (
    ("Command/Id", STRING), ("Command/Metric", STRING), ("Command/Status", STRING),
    ("Command/Reason", STRING), ("Command/Value", DOUBLE), ("Command/Read Back", DOUBLE),
)  # fmt: skip
_COUNTER = itertools.count(1)


def command_birth(now: float) -> list[MetricValue]:
    """The ``Command/*`` metrics of a birth: null until the first command."""
    return [MetricValue(name, kind, None, now) for name, kind in COMMAND_FIELDS]


def find_signal(namespace: Any, device: str, metric: str) -> str | None:
    """The signal born as ``metric`` on ``device`` (``""``: the node), if any."""
    for signal, name in namespace.names.items():
        if name == metric and namespace.device_of.get(signal) == device:
            return str(signal)
    return None


def command_of(signal: str, metric: str, device: str, value: Any, origin: str) -> Command:
    """A command for a metric write; the id names the device, the metric and a counter."""
    id_ = f"{device or 'node'}/{metric}#{int(time.time() * 1000)}-{next(_COUNTER)}"
    number = value if isinstance(value, bool | int | float) else str(value)
    return Command(id_, signal, number, origin)  # type: ignore[arg-type]


def reply_metrics(
    reply: Reply, metric: str, current: float | None, now: float
) -> list[MetricValue]:
    """The data message answering a metric write."""
    value = reply.read_back if reply.status == "done" else current
    asked = reply.value if isinstance(reply.value, int | float) else None
    values: dict[str, Any] = {
        "Command/Id": reply.id, "Command/Metric": metric, "Command/Status": reply.status,
        "Command/Reason": reply.reason, "Command/Value": asked,
        "Command/Read Back": reply.read_back,
    }  # fmt: skip
    metrics = [MetricValue(name, kind, values[name], now) for name, kind in COMMAND_FIELDS]
    if reply.signal:
        quality = 192 if value is not None else 0
        metrics.insert(0, MetricValue(metric, DOUBLE, value, now, quality))
    return metrics
