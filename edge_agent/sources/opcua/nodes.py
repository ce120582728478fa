"""Which nodes to read: node and group config, and resolving them on a session.

A node is named by NodeId (``ns=2;s=Pump1.Temperature``, ``i=2258``) or by a
browse path from the Root folder (``0:Objects/2:Plant/2:Pump1/2:Temperature``).
Browse paths are translated in one TranslateBrowsePathsToNodeIds request at
every connect, because a server restart may give the same variable a new NodeId.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from edge_agent.commands.config import WriteLimits
from edge_agent.schema import Duration, StrictModel

_NODE_ID_RE = re.compile(r"^(ns=\d+;|nsu=[^;]+;)?(i=\d+|s=.+|g=[0-9a-fA-F-]{36}|b=.+)$")
PATH_ELEMENT_RE = re.compile(r"^(\d+):(.+)$")


VariantName = Literal[
    "Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64",
    "Float", "Double",
]  # fmt: skip


class OpcuaWriteConfig(WriteLimits):
    """A node's ``write:`` block (see :class:`WriteLimits`).

    Attributes:
        type: the node's DataType, which the written Variant must carry (a server
            refuses a Double written to a Float node with BadTypeMismatch).
    """

    type: VariantName

    def check(self) -> None:
        """Numbers need a range; booleans none (Raises ValueError)."""
        if self.type != "Boolean":
            self.needs_range(self.type)


class OpcuaNodeConfig(StrictModel):
    """One variable to read.

    Attributes:
        name: signal name within the source (the signal is ``<source>.<name>``).
        node: NodeId, e.g. ``ns=2;s=Pump1.Temperature`` or ``i=2258``.
        path: browse path from Root, e.g. ``0:Objects/2:Plant/2:Pump1/2:Temperature``.
        unit: engineering unit, for the catalogue.
        asset: asset of this signal; defaults to the source's asset.
        description: free text for people.
        write: makes the node writable by commands, with its type and range.
    """

    name: str = Field(min_length=1)
    node: str = ""
    path: str = ""
    unit: str = ""
    asset: str = ""
    description: str = ""
    write: OpcuaWriteConfig | None = None

    @model_validator(mode="after")
    def _node_or_path(self) -> Self:
        if self.write is not None:
            self.write.check()
        if bool(self.node) == bool(self.path):
            raise ValueError("give exactly one of node (a NodeId) or path (a browse path)")
        if self.node and not _NODE_ID_RE.match(self.node):
            raise ValueError(f"node {self.node!r} is not a NodeId such as ns=2;s=Name or i=2258")
        if self.path:
            for element in self.path.strip("/").split("/"):
                if not PATH_ELEMENT_RE.match(element):
                    raise ValueError(
                        f"path element {element!r} must be <namespace index>:<BrowseName>, "
                        "e.g. 2:Pump1"
                    )
        return self


class DeadbandConfig(StrictModel):
    """A data-change filter: report only moves larger than ``value``.

    Attributes:
        type: ``absolute`` (engineering units) or ``percent`` (of the node's EURange).
        value: the deadband.
    """

    type: Literal["absolute", "percent"]
    value: float = Field(ge=0)

    @model_validator(mode="after")
    def _percent_range(self) -> Self:
        if self.type == "percent" and self.value > 100:
            raise ValueError("a percent deadband must be between 0 and 100")
        return self


class OpcuaGroupConfig(StrictModel):
    """Nodes read the same way.

    Attributes:
        mode: ``poll`` (one batched Read per tick) or ``subscribe`` (monitored items).
        interval: poll: how often this group is read, a multiple of the source's
            interval (default: the source's interval, every tick). A tick reads, in
            one batch, only the groups that are due.
        publishing_interval: subscribe: how often the server sends changes
            (default: the source's interval).
        sampling_interval: subscribe: how often the server samples each node
            (default: a tenth of the publishing interval but at least 100 ms, and
            never more than the publishing interval; see ``sampling_of``).
        queue_size: subscribe: changes the server keeps per node between publishes
            (default: enough for every sample of one publishing interval, see ``queue_of``).
        deadband: subscribe: report only changes larger than this. A server that
            refuses it for a node (a Boolean or text node) gets that node without it.
        nodes: the variables.
    """

    mode: Literal["poll", "subscribe"] = "poll"
    interval: Duration | None = None
    publishing_interval: Duration | None = None
    sampling_interval: Duration | None = None
    queue_size: int | None = Field(default=None, ge=1, le=10_000)
    deadband: DeadbandConfig | None = None
    nodes: list[OpcuaNodeConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _subscribe_keys(self) -> Self:
        if self.mode == "poll":
            used = [key for key in _SUBSCRIBE_KEYS if key in self.model_fields_set]
            if used:
                raise ValueError(f"{', '.join(used)}: only for mode: subscribe")
        elif self.interval is not None:
            raise ValueError("interval: only for mode: poll (subscribe uses publishing_interval)")
        return self


_SUBSCRIBE_KEYS = ("publishing_interval", "sampling_interval", "queue_size", "deadband")


SAMPLING_FLOOR = 0.1  # s: the default sampling interval is at least this (server load)
QUEUE_MARGIN = 1  # one more than the samples of a publishing interval: its edges jitter


def publishing_of(group: OpcuaGroupConfig, default: float) -> float:
    """The publishing interval of a subscribed group (``default``: the source's interval)."""
    return group.publishing_interval or default


def sampling_of(group: OpcuaGroupConfig, default: float) -> float:
    """The sampling interval asked for the nodes of ``group``.

    Default: a tenth of the publishing interval but at least 100 ms (what a server
    samples costs it), and never above the publishing interval: so the default
    queue (``queue_of``) stays at most 11 deep. Sampling at the publishing
    interval with a queue of 1 (the old defaults) was measured keeping 20 of 39
    changes; a change that lives shorter than the sampling interval is never seen.
    """
    if group.sampling_interval is not None:
        return group.sampling_interval
    publishing = publishing_of(group, default)
    return min(publishing, max(publishing / 10, SAMPLING_FLOOR))


def queue_of(group: OpcuaGroupConfig, default: float) -> int:
    """The queue size asked per node: every sample of one publishing interval, plus a margin.

    With a queue of 1 the server keeps only the last change of each publishing
    interval; the samples in between are overwritten before they are sent.
    """
    if group.queue_size is not None:
        return group.queue_size
    samples = publishing_of(group, default) / max(sampling_of(group, default), 1e-3)
    return min(10_000, math.ceil(samples - 1e-9) + QUEUE_MARGIN)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A configured node and the NodeId it has on this session.

    Attributes:
        signal: the signal it feeds.
        node: its asyncua ``NodeId``, or None when its browse path was not found.
        label: the node as configured (NodeId or browse path), for messages.
        status: when ``node`` is None, the status the server gave for the path.
    """

    signal: str
    node: Any  # asyncua.ua.NodeId | None
    label: str = ""
    status: int = 0
