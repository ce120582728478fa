"""The OpenAPI 3.1 document of the JSON API, served at ``/api/v1/openapi.json``.

The tests validate every response against the schemas below, so this document
and the handlers in :mod:`edge_agent.web.site` cannot drift apart silently.
"""

from __future__ import annotations

from typing import Any

from edge_agent import __version__

NUM = {"type": "number"}
INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}


def opt(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def obj(**props: dict[str, Any]) -> dict[str, Any]:
    """A closed object whose every property is required."""
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


def arr(items: dict[str, Any]) -> dict[str, Any]:
    """An array of ``items``."""
    return {"type": "array", "items": items}


def ref(name: str) -> dict[str, Any]:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


MODBUS_UNIT = obj(
    unit=INT,
    requests=INT,
    answers=INT,
    timeouts=INT,
    exceptions={"type": "object", "additionalProperties": INT},
    malformed=INT,
    connection_lost=INT,
    last_response_ms=opt(NUM),
    mean_response_ms=opt(NUM),
    backoff=BOOL,
    backoff_since=opt(NUM),
    outages=INT,
)
OPCUA_COUNTS = obj(
    data_changes=INT,
    sessions=INT,
    reconnects=INT,
    keepalive_misses=INT,
    subscriptions_silent=INT,
    subscriptions_ended=INT,
    subscriptions_recreated=INT,
    read_splits=INT,
)
SOURCE = obj(
    name=STR,
    type=STR,
    interval_s=NUM,
    link={"enum": ["up", "down"]},
    last_error=STR,
    last_error_at=opt(NUM),
    last_good_read_at=opt(NUM),
    read_ms=NUM,
    reads=INT,
    samples=INT,
    skipped_ticks=INT,
    outages=INT,
    units=arr(MODBUS_UNIT),
    opcua=opt(OPCUA_COUNTS),
)
SINK = obj(
    name=STR,
    type=STR,
    connection={"enum": ["connected", "disconnected"]},
    last_error=STR,
    last_error_at=opt(NUM),
    delivered_at=opt(NUM),
    backlog_rows=INT,
    oldest_age_s=opt(NUM),
    dropped=INT,
    rejected=INT,
)
STATUS = obj(
    agent=obj(id=STR, version=STR, started=NUM, uptime_s=NUM, config_hash=STR),
    now=NUM,
    sources=arr(ref("Source")),
    sinks=arr(ref("Sink")),
    twin=obj(samples_written=INT, write_failing=BOOL, samples_dropped=INT),
    open_alerts=INT,
    snapshot_at=NUM,
)
QUALITY = {"enum": ["good", "uncertain", "bad"]}
SIGNAL = obj(
    name=STR,
    value=opt(NUM),
    unit=STR,
    quality=opt(QUALITY),
    ts=opt(NUM),
    age_s=opt(NUM),
    stale=BOOL,
    source=STR,
    asset=STR,
    description=STR,
    register=opt(STR),
    words=opt(arr(INT)),
)
ALERT = obj(
    id=STR,
    asset=STR,
    kind={"enum": ["model", "rule"]},
    cause=STR,
    severity={"enum": ["info", "warning", "critical"]},
    state={"enum": ["open", "cleared"]},
    raised_at=opt(NUM),
    cleared_at=opt(NUM),
    window_start=NUM,
    window_end=NUM,
    reason=STR,
    signals=arr(STR),
    score=NUM,
    threshold=NUM,
)
ASSET = obj(
    name=STR,
    health=opt(NUM),
    score=opt(NUM),
    threshold=opt(NUM),
    alarm=opt(BOOL),
    scored_at=opt(NUM),
    mode=opt({"enum": ["live", "shadow"]}),
    signals=arr(STR),
    rules=arr(STR),
    open_alerts=arr(ref("Alert")),
)
_HEAD = {"signal": STR, "unit": STR, "since": NUM, "until": opt(NUM)}
RAW = obj(
    **_HEAD,
    rollups={"const": False},
    ts=arr(NUM),
    value=arr(opt(NUM)),
    quality=arr(QUALITY),
)
ROLLUPS = obj(
    **_HEAD,
    rollups={"const": True},
    ts=arr(NUM),
    min=arr(opt(NUM)),
    max=arr(opt(NUM)),
    mean=arr(opt(NUM)),
    last=arr(opt(NUM)),
    count=arr(INT),
    bad=arr(INT),
)
ERROR = obj(error=STR)

SCHEMAS: dict[str, dict[str, Any]] = {
    "Source": SOURCE,
    "Sink": SINK,
    "Status": STATUS,
    "Signal": SIGNAL,
    "Signals": obj(now=NUM, signals=arr(ref("Signal"))),
    "History": {"oneOf": [RAW, ROLLUPS]},
    "Alert": ALERT,
    "Alerts": obj(state={"enum": ["open", "all"]}, alerts=arr(ref("Alert"))),
    "Asset": ASSET,
    "Assets": obj(assets=arr(ref("Asset"))),
    "Config": obj(config_hash=STR, config={"type": "object"}),
    "Error": ERROR,
}


def _param(name: str, where: str, schema: dict[str, Any], doc: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": doc,
    }


def _op(summary: str, schema: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    json_of = {"application/json": {"schema": ref(schema)}}
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": json_of},
        "401": {
            "description": "missing or wrong bearer token",
            "content": {"application/json": {"schema": ref("Error")}},
        },
    }
    if params:
        responses["400"] = {
            "description": "a parameter is invalid",
            "content": {"application/json": {"schema": ref("Error")}},
        }
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    return {"get": op}


def _history_op() -> dict[str, Any]:
    params = [
        _param("name", "path", STR, "the signal, e.g. pump1.motor_current"),
        _param("since", "query", STR, "a duration back from now (1h) or Unix seconds"),
        _param("until", "query", STR, "Unix seconds (default: now)"),
        _param("rollups", "query", {"enum": ["true", "false"]}, "minute rollups, not raw"),
    ]
    op = _op("A signal's raw ring or minute rollups from the twin", "History", params)
    op["get"]["responses"]["404"] = {
        "description": "no such signal",
        "content": {"application/json": {"schema": ref("Error")}},
    }
    return op


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    state = _param("state", "query", {"enum": ["open", "all"]}, "open (default) or all")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "edge-agent site view API",
            "version": __version__,
            "description": "Read-only. With a token configured every request needs "
            "`Authorization: Bearer <token>`.",
        },
        "paths": {
            "/api/v1/status": _op("The agent, each source and each sink", "Status"),
            "/api/v1/signals": _op("Every signal's latest value from the twin", "Signals"),
            "/api/v1/signals/{name}/history": _history_op(),
            "/api/v1/assets": _op("Health, score and open alerts per asset", "Assets"),
            "/api/v1/alerts": _op("Open alerts, or recent ones", "Alerts", [state]),
            "/api/v1/config": _op("The effective config, secrets redacted", "Config"),
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }
