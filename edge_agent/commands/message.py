"""The JSON of commands, replies and audit events (version 1, like forward/encode.py).

Command (to ``edge-agent/{gateway}/cmd``)::

    {"v": 1, "type": "write", "id": "r-42", "signal": "plc.setpoint", "value": 42.5,
     "ts": 1767225600.0}

``id`` is any non-empty string of the requester's (at most 128 characters), echoed in
the reply; ``ts`` (optional, epoch seconds) lets the agent refuse a stale command.

Reply (on ``edge-agent/{gateway}/cmd/reply``), exactly one per command::

    {"v": 1, "type": "reply", "gateway": "gw1", "id": "r-42", "signal": "plc.setpoint",
     "value": 42.5, "status": "done", "reason": "", "read_back": 42.5,
     "ts": 1767225600.31, "elapsed": 0.012}

``status`` is ``done``, ``refused`` (nothing was sent to the device) or ``failed``
(sent, then refused by the device, unanswered or read back different); ``reason`` says
why. A payload that is not a command still gets a reply: ``refused``, with the id if
one could be read (else null).

Audit event (through the outbox, on ``edge-agent/{gateway}/audit``): the reply's
fields with ``"type": "command"``, the command's ``origin`` and ``event_id``
(``"<origin>:<id>"``, the idempotency key upstream).

Keys may be added within version 1; none is removed or changes meaning without a
new ``v``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from edge_agent.commands.policy import Command, Reply

VERSION = 1
_MAX_ID = 128


class BadCommand(ValueError):
    """A payload that is not a valid command; ``id`` is its id when one was readable."""

    def __init__(self, reason: str, id_: str | None) -> None:
        super().__init__(reason)
        self.id = id_


def parse_command(body: bytes, origin: str) -> Command:
    """The command in an MQTT payload.

    Raises:
        BadCommand: not JSON, another version, or a missing or mistyped key.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCommand(f"not JSON: {exc}", None) from None
    if not isinstance(data, dict):
        raise BadCommand("not a JSON object", None)
    id_ = data.get("id")
    if not isinstance(id_, str) or not 0 < len(id_) <= _MAX_ID:
        raise BadCommand(f"id must be a string of 1..{_MAX_ID} characters", None)
    if data.get("v") != VERSION or data.get("type") != "write":
        raise BadCommand(f'expected "v": {VERSION} and "type": "write"', id_)
    signal, value, ts = data.get("signal"), data.get("value"), data.get("ts")
    if not isinstance(signal, str) or not signal:
        raise BadCommand("signal must be a signal name such as plc.setpoint", id_)
    if not isinstance(value, bool | int | float):
        raise BadCommand("value must be a number or a boolean", id_)
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int | float)):
        raise BadCommand("ts must be epoch seconds", id_)
    return Command(id_, signal.lower(), value, origin, None if ts is None else float(ts))


def _dumps(data: dict[str, Any]) -> bytes:
    clean = {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in data.items()
    }
    return json.dumps(clean, separators=(",", ":"), allow_nan=False).encode()


def encode_reply(reply: Reply, gateway: str) -> bytes:
    """The reply payload."""
    body = asdict(reply)
    del body["origin"]
    body["id"] = reply.id or None  # a payload without a readable id
    return _dumps({"v": VERSION, "type": "reply", "gateway": gateway, **body})


def encode_audit(reply: Reply, gateway: str) -> bytes:
    """The audit event payload (stored in the outbox)."""
    body = asdict(reply)
    event_id = f"{reply.origin}:{reply.id}"
    return _dumps({"v": VERSION, "type": "command", "gateway": gateway, "event_id": event_id,
                   **body})  # fmt: skip


def bad_reply(error: BadCommand, origin: str, ts: float) -> Reply:
    """The ``refused`` reply to a payload that is no valid command."""
    return Reply(error.id or "", "", None, "refused", str(error), None, origin, ts, 0.0)
