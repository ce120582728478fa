"""Which nodes to read: group config, and resolving the nodes on a session.

A node (its model: :mod:`edge_agent.sources.opcua.node_list`) is named by NodeId
(``ns=2;s=Pump1.Temperature``, ``i=2258``) or by a browse path from the Root folder
(``0:Objects/2:Plant/2:Pump1/2:Temperature``).
Browse paths are translated in one TranslateBrowsePathsToNodeIds request at
every connect, because a server restart may give the same variable a new NodeId.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from edge_agent.schema import Duration, StrictModel
from edge_agent.sources.opcua.node_list import NodeList, NodeRow, NodeTable


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
    nodes: NodeList = Field(min_length=1)

    def rows(self) -> Iterator[NodeRow]:
        """Every node as a :class:`NodeRow`, from a list or a table, without building models."""
        return NodeTable.of(self.nodes).rows()

    def compact(self) -> None:
        """Keep the nodes as a :class:`NodeTable` (the agent's process; see ``config_fork``).

        The model is frozen: replacing the list by an equal, read-only table changes
        nothing anyone can see but the memory it takes.
        """
        object.__setattr__(self, "nodes", NodeTable.of(self.nodes))

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
