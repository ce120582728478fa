"""The Prometheus text exposition format (version 0.0.4), written by the agent itself.

Why not prometheus_client: the daemon used it only to turn families of samples into
this text, and importing it at the first scrape brought ``http.server``, ``email``,
``wsgiref`` and ``urllib.request`` along: +2.0 MB of steady RSS against a 60 MB
budget (BENCHMARKS.md, "/metrics without prometheus_client"). A Prometheus server
scraping the gateway is the normal case, so every gateway paid it. The format is
small; the tests read this module's output with prometheus_client's own parser.

What the format asks, and this module does:

* each family once: ``# HELP`` (backslash and newline escaped), ``# TYPE``, then
  its samples; a name claimed by two families is refused (a programming error);
* counters are exposed as ``<name>_total`` (the family is named without it), a
  summary as ``<name>_count`` and ``<name>_sum``;
* label values escape backslash, double quote and newline; label names are written
  in sorted order (as prometheus_client wrote them, so the text stays comparable);
* values are Python's shortest round-trip float text, ``+Inf``, ``-Inf`` or ``NaN``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Kind = Literal["counter", "gauge", "summary"]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_CLAIMS: dict[str, tuple[str, ...]] = {
    "counter": ("", "_total"),
    "gauge": ("",),
    "summary": ("", "_count", "_sum"),
}
"""The sample names each kind of family reserves (suffixes of its name)."""


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One series' value at a scrape.

    Attributes:
        suffix: appended to the family's name (``_total``, ``_count``, ``_sum`` or empty).
        values: the label values, in the order of the family's ``labels``.
        value: the value.
    """

    suffix: str
    values: tuple[str, ...]
    value: float


@dataclass(slots=True)
class Family:
    """A metric family: one name, one kind, one help text, its samples.

    Attributes:
        name: the metric name (a counter's without ``_total``).
        kind: counter, gauge or summary.
        doc: the help text.
        labels: the label names every sample gives values for.
        samples: the samples, written in this order.

    Raises:
        ValueError: a name or label name the format does not allow.
    """

    name: str
    kind: Kind
    doc: str
    labels: tuple[str, ...] = ()
    samples: list[MetricSample] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"not a metric name: {self.name!r}")
        if self.kind == "counter" and self.name.endswith("_total"):
            raise ValueError(f"name the counter {self.name!r} without _total")
        for label in self.labels:
            if not _LABEL.fullmatch(label) or label.startswith("__"):
                raise ValueError(f"not a label name: {label!r}")

    def add(self, values: Sequence[str], value: float) -> None:
        """Add a counter's or a gauge's sample."""
        if self.kind == "summary":
            raise ValueError(f"{self.name} is a summary: use add_summary")
        self.samples.append(MetricSample(_SUFFIX[self.kind], self._checked(values), value))

    def add_summary(self, values: Sequence[str], count: float, total: float) -> None:
        """Add a summary's ``_count`` and ``_sum`` (no quantiles)."""
        if self.kind != "summary":
            raise ValueError(f"{self.name} is a {self.kind}, not a summary")
        checked = self._checked(values)
        self.samples.append(MetricSample("_count", checked, count))
        self.samples.append(MetricSample("_sum", checked, total))

    def exposed(self) -> str:
        """The name on the HELP and TYPE lines (a counter's with ``_total``)."""
        return self.name + _SUFFIX[self.kind]

    def claims(self) -> tuple[str, ...]:
        """Every sample name this family reserves."""
        return tuple(self.name + suffix for suffix in _CLAIMS[self.kind])

    def _checked(self, values: Sequence[str]) -> tuple[str, ...]:
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name}: {len(values)} label values for {self.labels}")
        return tuple(values)


_SUFFIX = {"counter": "_total", "gauge": "", "summary": ""}


def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Family:
    """A counter family (``name`` without ``_total``)."""
    return Family(name, "counter", doc, tuple(labels))


def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Family:
    """A gauge family."""
    return Family(name, "gauge", doc, tuple(labels))


def summary(name: str, doc: str, labels: Sequence[str] = ()) -> Family:
    """A summary family (count and sum only)."""
    return Family(name, "summary", doc, tuple(labels))


def format_value(value: float) -> str:
    """A sample value as the format writes it (Go's float syntax accepts Python's repr)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def escape_label(value: str) -> str:
    """A label value inside its double quotes."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def escape_help(text: str) -> str:
    """A HELP line's text (double quotes stay as they are there)."""
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _lines(family: Family) -> list[str]:
    head = family.exposed()
    lines = [f"# HELP {head} {escape_help(family.doc)}", f"# TYPE {head} {family.kind}"]
    labels = family.labels
    order = sorted(range(len(labels)), key=labels.__getitem__)
    for sample in family.samples:
        pairs = ",".join(f'{labels[i]}="{escape_label(sample.values[i])}"' for i in order)
        where = "{" + pairs + "}" if pairs else ""
        lines.append(f"{family.name}{sample.suffix}{where} {format_value(sample.value)}")
    return lines


def render(families: Iterable[Family]) -> bytes:
    """The text of a scrape, UTF-8.

    Raises:
        ValueError: two families claim one name.
    """
    lines: list[str] = []
    claimed: set[str] = set()
    for family in families:
        names = family.claims()
        if claimed.intersection(names):
            raise ValueError(f"two families named {family.exposed()}")
        claimed.update(names)
        lines += _lines(family)
    lines.append("")
    return "\n".join(lines).encode()
