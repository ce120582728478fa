"""Nodes the server cannot read as configured: logged once, kept for status and read-once.

A ``Sample`` carries a quality, not a status code (every stage and the twin's
schema would have to carry it): the status of a node that does not exist, or
that we may not read, lives here instead. It is logged at ERROR once when it
appears (naming the node as configured and the status), once at INFO when the
node reads again, and ``OpcuaSource.problems()`` lists what is wrong now, for
``read-once`` (exit 2) and for status views. The samples of such a node are BAD.
"""

from __future__ import annotations

import logging
from typing import Any

from asyncua import ua as _ua

log = logging.getLogger(__name__)
ua: Any = _ua  # asyncua's generated types do not type-check under --strict

# Statuses that say the node as configured cannot be read at all (a config or
# server-side permission matter), as opposed to a device reporting a bad value.
UNREADABLE = frozenset(
    {
        "BadNodeIdUnknown",
        "BadNodeIdInvalid",
        "BadNoMatch",
        "BadBrowseNameInvalid",
        "BadAttributeIdInvalid",
        "BadNotReadable",
        "BadUserAccessDenied",
        "BadNotSupported",
        "BadIndexRangeInvalid",
        "BadDataEncodingInvalid",
        "BadNotFound",
    }
)


def status_name(status: int) -> str:
    """The symbolic name of a status code value (``BadNodeIdUnknown``)."""
    return str(ua.StatusCode(status).name)


def is_unreadable(status: int) -> bool:
    """True when ``status`` means the node itself cannot be read."""
    return status_name(status) in UNREADABLE


class NodeProblems:
    """The nodes of one source that cannot be read now, each logged once per transition."""

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels  # signal -> node as configured (NodeId or browse path)
        self.current: dict[str, str] = {}  # signal -> status name

    def check(self, signal: str, status: int) -> None:
        """Record the status of one value of ``signal``; log when its problem starts or ends."""
        name = status_name(status) if status else "Good"
        if name in UNREADABLE:
            if self.current.get(signal) != name:
                self.current[signal] = name
                log.error(
                    "%s: node %s cannot be read: %s (%s); recorded as BAD",
                    signal,
                    self.labels.get(signal, "?"),
                    name,
                    ua.StatusCode(status).doc,
                )
        elif self.current.pop(signal, None) is not None:
            log.info("%s: node %s readable again", signal, self.labels.get(signal, "?"))

    def check_all(self, items: list[tuple[str, Any]]) -> None:
        """``check`` every ``(signal, DataValue)`` pair."""
        for signal, data in items:
            code = data.StatusCode
            self.check(signal, code.value if code is not None else 0)

    def problems(self) -> dict[str, str]:
        """``signal -> "node: status"`` for every node that cannot be read now."""
        return {s: f"{self.labels.get(s, '?')}: {name}" for s, name in self.current.items()}
