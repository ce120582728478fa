"""What the edge node publishes: its devices, their metrics, current values and changes.

Mapping (see docs/sparkplug.md):

- A **device** is an asset: a signal's ``asset``, or its source's name when it has
  none (the same fallback rules use for their alerts). So an asset's signals, its
  detector score/alarm/health and its alerts arrive in one device folder, which is
  what an operator looks at; a source-wide device would split an asset over sources.
- A signal ``<source>.<name>`` is the metric ``<source>/<name>`` (Double) of its
  device; detector signals are ``detect/<asset>/score`` etc. Each value carries the
  'Quality' property (192 good, 0 bad; a BAD sample is ``is_null``), and an OPC UA
  uncertain value adds ``Uncertain = true``.
- Alerts are the metrics ``Alert/*`` of their asset's device (the node's own when the
  asset is no device): ``Active`` and ``Open Count`` over the alerts seen open, and
  the last event's ``Id``, ``State``, ``Cause``, ``Severity``, ``Reason``, ``Score``,
  ``Threshold`` and ``Event`` (the JSON payload of the plain MQTT sink).
- The node has ``bdSeq``, ``Node Control/Rebirth`` and ``Outbox/Dropped Alerts`` /
  ``Outbox/Dropped Telemetry`` (running totals of rows the outbox had to drop).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_agent.forward.outbox_rows import Record
from edge_agent.forward.sparkplug_payload import (
    BOOLEAN,
    DOUBLE,
    INT32,
    INT64,
    QUALITY_BAD,
    QUALITY_GOOD,
    STRING,
    MetricValue,
)
from edge_agent.types import Quality, Sample, SignalInfo

NODE = ""
"""The device key of node-level metrics (NBIRTH / NDATA)."""
REBIRTH = "Node Control/Rebirth"
_TOPIC_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_"})
_ALERT_FIELDS = (
    ("Alert/Active", BOOLEAN), ("Alert/Open Count", INT32), ("Alert/Id", STRING),
    ("Alert/State", STRING), ("Alert/Cause", STRING), ("Alert/Severity", STRING),
    ("Alert/Reason", STRING), ("Alert/Score", DOUBLE), ("Alert/Threshold", DOUBLE),
    ("Alert/Event", STRING),
)  # fmt: skip
_DROPPED = (("Outbox/Dropped Alerts", "alert"), ("Outbox/Dropped Telemetry", "telemetry"))


def device_id(name: str) -> str:
    """A Sparkplug device id: MQTT separators and wildcards become ``_``."""
    return (name or "_").translate(_TOPIC_UNSAFE)


def metric_name(signal: str) -> str:
    """``plc.temp`` -> ``plc/temp`` (folders in a SCADA host's tag browser)."""
    return signal.replace(".", "/")


def quality_of(sample: Sample) -> tuple[int, bool]:
    """The 'Quality' code and the uncertain flag of a sample."""
    if sample.quality == Quality.BAD or sample.value is None:
        return QUALITY_BAD, False
    return QUALITY_GOOD, sample.quality == Quality.UNCERTAIN


def signal_metric(name: str, sample: Sample, historical: bool = False) -> MetricValue:
    """The metric of one sample."""
    quality, uncertain = quality_of(sample)
    value = None if quality == QUALITY_BAD else sample.value
    return MetricValue(name, DOUBLE, value, sample.ts, quality, historical, uncertain)


def _changed(old: Sample | None, new: Sample, band: float) -> bool:
    """Report by exception: a new quality, a value leaving or entering null, or a move > band."""
    if old is None or old.quality != new.quality:
        return True
    if old.value is None or new.value is None:
        return old.value is not new.value
    if not (math.isfinite(old.value) and math.isfinite(new.value)):
        return repr(old.value) != repr(new.value)
    return abs(new.value - old.value) > band if band > 0 else new.value != old.value


@dataclass
class Namespace:
    """Devices and metrics of one edge node, with current values and what was sent.

    Args:
        infos: every signal the agent produces (sources and detector).
        deadband: default absolute deadband.
        deadbands: per-signal deadbands.
    """

    infos: Sequence[SignalInfo]
    deadband: float = 0.0
    deadbands: dict[str, float] = field(default_factory=dict)
    current: dict[str, Sample] = field(default_factory=dict)
    sent: dict[str, Sample] = field(default_factory=dict)
    alerts: dict[str, dict[str, MetricValue]] = field(default_factory=dict)
    open_alerts: dict[str, set[str]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    commands: bool = False

    def __post_init__(self) -> None:
        self.device_of = {i.signal: device_id(i.asset or i.source) for i in self.infos}
        self.devices = sorted(set(self.device_of.values()))
        self.names = {i.signal: metric_name(i.signal) for i in self.infos}

    def with_catalogue(self, infos: Sequence[SignalInfo]) -> Namespace:
        """The namespace of a new catalogue (a reload), keeping what this one learnt.

        Current values, what was sent, the alert metrics and the drop counts carry
        over for the signals and devices that remain.
        """
        new = Namespace(list(infos), self.deadband, self.deadbands, dropped=dict(self.dropped))
        new.commands = self.commands
        known, devices = new.device_of, {NODE, *new.devices}
        new.current = {s: v for s, v in self.current.items() if s in known}
        new.sent = {s: v for s, v in self.sent.items() if s in known}
        new.alerts = {d: a for d, a in self.alerts.items() if d in devices}
        new.open_alerts = {d: o for d, o in self.open_alerts.items() if d in devices}
        return new

    def reshaped(self, new: Namespace) -> set[str]:
        """Devices of this namespace whose metrics differ in ``new``, or that it lacks."""
        before: dict[str, set[str]] = {}
        after: dict[str, set[str]] = {}
        for names, space in ((before, self), (after, new)):
            for signal, device in space.device_of.items():
                names.setdefault(device, set()).add(space.names[signal])
        return {device for device, metrics in before.items() if after.get(device) != metrics}

    # -- births ------------------------------------------------------------

    def node_birth(self, bd_seq: int, now: float) -> list[MetricValue]:
        """NBIRTH metrics: bdSeq, the rebirth control, outbox drops, node-level alerts."""
        metrics = [
            MetricValue("bdSeq", INT64, bd_seq, now),
            MetricValue(REBIRTH, BOOLEAN, False, now),
        ]
        metrics += [
            MetricValue(name, INT64, self.dropped.get(kind), now) for name, kind in _DROPPED
        ]
        return metrics + self._alert_birth(NODE, now) + self._command_birth(now)

    def device_birth(self, device: str, now: float) -> list[MetricValue]:
        """DBIRTH metrics of ``device``: every signal's current value, then its alerts.

        What a birth carries counts as sent: later changes are measured against it.
        """
        metrics = []
        for signal, dev in self.device_of.items():
            if dev != device:
                continue
            sample = self.current.get(signal)
            if sample is None:
                metrics.append(MetricValue(self.names[signal], DOUBLE, None, now, QUALITY_BAD))
                self.sent.pop(signal, None)
            else:
                metrics.append(signal_metric(self.names[signal], sample))
                self.sent[signal] = sample
        metrics.sort(key=lambda m: m.ts)  # the specification wants chronological order
        return metrics + self._alert_birth(device, now) + self._command_birth(now)

    def _command_birth(self, now: float) -> list[MetricValue]:
        from edge_agent.forward.sparkplug_commands import command_birth

        return command_birth(now) if self.commands else []

    def _alert_birth(self, device: str, now: float) -> list[MetricValue]:
        last = self.alerts.get(device, {})
        return [last.get(n) or MetricValue(n, kind, None, now) for n, kind in _ALERT_FIELDS]

    # -- live values -------------------------------------------------------

    def observe(self, samples: Iterable[Sample]) -> None:
        """Remember the latest sample of each known signal (for the next birth)."""
        current, known = self.current, self.device_of
        for sample in samples:
            if sample.signal in known:
                old = current.get(sample.signal)
                if old is None or sample.ts >= old.ts:
                    current[sample.signal] = sample

    def changes(self, samples: Iterable[Sample]) -> dict[str, list[MetricValue]]:
        """The samples that pass their deadband, as live metrics by device."""
        out: dict[str, list[MetricValue]] = {}
        for sample in samples:
            device = self.device_of.get(sample.signal)
            if device is None:
                continue
            band = self.deadbands.get(sample.signal, self.deadband)
            if _changed(self.sent.get(sample.signal), sample, band):
                self.sent[sample.signal] = sample
                out.setdefault(device, []).append(signal_metric(self.names[sample.signal], sample))
        return out

    # -- outbox records ----------------------------------------------------

    def from_record(self, record: Record, now: float) -> tuple[str, list[MetricValue]] | None:
        """The device and metrics of an outbox record; None for one that maps to nothing."""
        body: dict[str, Any] = json.loads(record.body)
        if record.kind == "telemetry":
            return self._summary(body)
        if record.kind == "alert":
            return self._alert(body, record.body.decode())
        if record.kind == "notice":
            dropped = body.get("dropped", {})
            self.dropped.update({k: int(v) for k, v in dropped.items()})
            return NODE, [MetricValue(n, INT64, self.dropped.get(k), now) for n, k in _DROPPED]
        return None

    def _summary(self, body: dict[str, Any]) -> tuple[str, list[MetricValue]] | None:
        """A telemetry summary sent late: the window's last value at its end, historical."""
        signal = str(body.get("signal", ""))
        device = self.device_of.get(signal)
        if device is None:
            return None
        last = body.get("last")
        quality = Quality.GOOD if last is not None else Quality.BAD
        sample = Sample(signal, float(body["end"]), last, quality)
        return device, [signal_metric(self.names[signal], sample, historical=True)]

    def _alert(self, body: dict[str, Any], event: str) -> tuple[str, list[MetricValue]]:
        device = device_id(str(body.get("asset", "")))
        device = device if device in self.devices else NODE
        opened = self.open_alerts.setdefault(device, set())
        if body.get("state") == "cleared":
            opened.discard(str(body.get("id")))
        else:  # a raise, or an update (severity, acknowledged, shelved) of an open alert
            opened.add(str(body.get("id")))
        ts = float(body.get("window_end") or 0.0)
        values: dict[str, Any] = {
            "Alert/Active": bool(opened), "Alert/Open Count": len(opened),
            "Alert/Id": body.get("id"), "Alert/State": body.get("state"),
            "Alert/Cause": body.get("cause"), "Alert/Severity": body.get("severity"),
            "Alert/Reason": body.get("reason"), "Alert/Score": body.get("score"),
            "Alert/Threshold": body.get("threshold"), "Alert/Event": event,
        }  # fmt: skip
        metrics = [MetricValue(name, kind, values[name], ts) for name, kind in _ALERT_FIELDS]
        self.alerts[device] = {m.name: m for m in metrics}
        return device, metrics
