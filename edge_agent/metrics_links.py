"""Per-protocol link counters for ``/metrics`` and the site view: Modbus units, OPC UA sessions.

The counts live on the sources (:class:`~edge_agent.sources.modbus.health.UnitCounts`
per Modbus unit, :class:`~edge_agent.sources.opcua.counters.OpcuaCounts` per OPC
UA source), incremented in place where the event is handled; this module only
reads them, on the event loop, when a scrape or an API call asks. A source
offers them through ``units()`` (Modbus) or ``link_counts()`` (OPC UA); other
sources have neither and get no series here.

Label sets are built here, per scrape, never on the poll path: one series per
unit for each Modbus family, and one per exception code a unit has answered.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from edge_agent.exposition import Family, Kind
from edge_agent.sources.modbus.health import UnitCounts, UnitHealth
from edge_agent.sources.opcua.counters import OpcuaCounts

PREFIX = "edge_agent"

EXCEPTION_NAMES = {
    1: "illegal_function",
    2: "illegal_data_address",
    3: "illegal_data_value",
    4: "server_device_failure",
    5: "acknowledge",
    6: "server_device_busy",
    8: "memory_parity_error",
    10: "gateway_path_unavailable",
    11: "gateway_target_failed_to_respond",
}
"""Modbus exception codes by their names in the Modbus application protocol."""


def exception_name(code: int) -> str:
    """The name of a Modbus exception code (``code_<n>`` for one the protocol does not name)."""
    return EXCEPTION_NAMES.get(code, f"code_{code}")


def modbus_units(source: Any) -> UnitHealth | None:
    """A Modbus source's per-unit health and counts; None for another source or before a connect."""
    units = getattr(source, "units", None)
    health = units() if callable(units) else None
    return health if isinstance(health, UnitHealth) else None


def opcua_counts(source: Any) -> OpcuaCounts | None:
    """An OPC UA source's counts; None for another source."""
    counts = getattr(source, "link_counts", None)
    found = counts() if callable(counts) else None
    return found if isinstance(found, OpcuaCounts) else None


def wall_clock(monotonic: float | None) -> float | None:
    """A monotonic (loop) time as Unix seconds."""
    return None if monotonic is None else time.time() - (time.monotonic() - monotonic)


def unit_record(unit: int, counts: UnitCounts, down_since: float | None) -> dict[str, Any]:
    """The site API's shape of one Modbus unit."""
    replies = counts.replies
    return {
        "unit": unit,
        "requests": counts.requests,
        "answers": counts.answers,
        "timeouts": counts.timeouts,
        "exceptions": {str(code): n for code, n in sorted(counts.exceptions.items())},
        "malformed": counts.malformed,
        "connection_lost": counts.lost,
        "last_response_ms": round(counts.last_response * 1000, 3) if replies else None,
        "mean_response_ms": round(counts.response_sum / replies * 1000, 3) if replies else None,
        "backoff": down_since is not None,
        "backoff_since": wall_clock(down_since),
        "outages": counts.outages,
    }


def unit_records(source: Any) -> list[dict[str, Any]]:
    """Each unit of a Modbus source (empty for another source)."""
    health = modbus_units(source)
    if health is None:
        return []
    return [unit_record(u, c, health.down_since(u)) for u, c in sorted(health.counts.items())]


def opcua_record(source: Any) -> dict[str, int] | None:
    """The site API's shape of an OPC UA source's counts (None for another source)."""
    counts = opcua_counts(source)
    if counts is None:
        return None
    return {
        "data_changes": counts.data_changes,
        "sessions": counts.sessions,
        "reconnects": counts.reconnects,
        "keepalive_misses": counts.keepalive_misses,
        "subscriptions_silent": counts.silent,
        "subscriptions_ended": counts.ended,
        "subscriptions_recreated": counts.recreated,
        "read_splits": counts.read_splits,
    }


def _family(kind: Kind, name: str, doc: str, labels: Sequence[str]) -> Family:
    return Family(f"{PREFIX}_{name}", kind, doc, tuple(labels))


_MODBUS: tuple[tuple[Kind, str, str, tuple[str, ...]], ...] = (
    ("counter", "modbus_requests", "Requests sent to a unit (retries too).", ()),
    (
        "counter",
        "modbus_failed_requests",
        "Requests without data, by kind: timeout, exception, malformed, connection_lost.",
        ("kind",),
    ),
    ("counter", "modbus_exceptions", "Exception replies by code.", ("code", "name")),
    ("summary", "modbus_response_seconds", "Time to each reply (data or exception).", ()),
    ("gauge", "modbus_last_response_seconds", "Time the last reply took.", ()),
    ("gauge", "modbus_unit_backoff", "1 while the unit is backed off.", ()),
    (
        "gauge",
        "modbus_unit_backoff_since_timestamp_seconds",
        "When the unit's current backoff began (0: not backed off).",
        (),
    ),
    ("counter", "modbus_unit_outages", "Times the unit was backed off.", ()),
)


def modbus_metrics(sources: Sequence[Any]) -> Iterator[Family]:
    """The per-unit families of every Modbus source among ``sources``."""
    families = [_family(k, n, d, ["source", "unit", *extra]) for k, n, d, extra in _MODBUS]
    for source in sources:
        health = modbus_units(source)
        if health is None:
            continue
        for unit, counts in sorted(health.counts.items()):
            key = [source.config.name, str(unit)]
            _add_unit(families, key, counts, health.down_since(unit))
    yield from families


def _add_unit(
    families: list[Family], key: list[str], counts: UnitCounts, down: float | None
) -> None:
    requests, failed, exceptions, response, last, backoff, since, outages = families
    requests.add(key, float(counts.requests))
    for kind, value in _failures(counts):
        failed.add([*key, kind], float(value))
    for code, value in sorted(counts.exceptions.items()):
        exceptions.add([*key, str(code), exception_name(code)], float(value))
    response.add_summary(key, float(counts.replies), counts.response_sum)
    last.add(key, counts.last_response)
    backoff.add(key, float(down is not None))
    since.add(key, wall_clock(down) or 0.0)
    outages.add(key, float(counts.outages))


def _failures(counts: UnitCounts) -> tuple[tuple[str, int], ...]:
    return (
        ("timeout", counts.timeouts),
        ("exception", sum(counts.exceptions.values())),
        ("malformed", counts.malformed),
        ("connection_lost", counts.lost),
    )


_OPCUA = (
    ("opcua_data_changes", "Data-change notifications received on subscriptions.", "data_changes"),
    ("opcua_sessions", "Sessions opened (the first, then one per reconnect).", "sessions"),
    ("opcua_session_reconnects", "Sessions opened after the first.", "reconnects"),
    (
        "opcua_keepalive_misses",
        "Gaps in a subscription's publish responses over 1.5 keep-alive periods, each once.",
        "keepalive_misses",
    ),
    ("opcua_read_splits", "Reads refused as too big and sent again in halves.", "read_splits"),
)


def opcua_metrics(sources: Sequence[Any]) -> Iterator[Family]:
    """The per-source families of every OPC UA source among ``sources``."""
    found = [(s.config.name, c) for s in sources if (c := opcua_counts(s)) is not None]
    for name, doc, attr in _OPCUA:
        family = _family("counter", name, doc, ["source"])
        for source, counts in found:
            family.add([source], float(getattr(counts, attr)))
        yield family
    recreated = _family(
        "counter",
        "opcua_subscriptions_recreated",
        "Subscriptions rebuilt on a live session, by reason: silent (no publish response,"
        " not even a keep-alive, for silence_timeout) or ended (by the server).",
        ["source", "reason"],
    )
    for source, counts in found:
        recreated.add([source, "silent"], float(counts.silent))
        recreated.add([source, "ended"], float(counts.ended))
    yield recreated
