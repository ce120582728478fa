"""An OPC UA group's nodes: their config model and the table the running agent keeps.

The YAML's ``nodes:`` list validates to :class:`OpcuaNodeConfig` models; the agent's
process keeps them as a :class:`NodeTable` (a name and a NodeId or browse path per
node, and one shared :class:`NodeShape` per distinct rest-of-the-node), as a Modbus
source keeps its registers (:mod:`edge_agent.sources.modbus.registers`).
"""

from __future__ import annotations

import operator
import re
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Annotated, Any, Literal, NamedTuple, Self

from pydantic import Field, GetPydanticSchema, model_validator

from edge_agent.commands.config import WriteLimits
from edge_agent.model_table import ModelTable, list_schema
from edge_agent.schema import StrictModel

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


_SHAPE_FIELDS = ("unit", "asset", "description", "write")
_ROW_FIELDS = operator.attrgetter("name", "node", "path", *_SHAPE_FIELDS)


@dataclass(frozen=True, slots=True)
class NodeShape:
    """Everything about a node but its name and where it is (shared by nodes alike).

    ``by_path``: the node is given by ``path`` (a browse path), not by ``node``.
    ``fields_set`` is which fields the YAML wrote (pydantic's ``model_fields_set``), so
    that a node built back is the model it was; left out of equality, as pydantic does.
    """

    by_path: bool
    unit: str
    asset: str
    description: str
    write: OpcuaWriteConfig | None
    fields_set: frozenset[str] = dataclass_field(compare=False)


class NodeRow(NamedTuple):
    """One node of a :class:`NodeTable`, with the attributes of :class:`OpcuaNodeConfig`."""

    name: str
    node: str
    path: str
    unit: str
    asset: str
    description: str
    write: OpcuaWriteConfig | None


class NodeTable(ModelTable[OpcuaNodeConfig]):
    """A group's nodes as columns: name, NodeId or browse path, and a shape number.

    An :class:`OpcuaNodeConfig` costs about 350 bytes beyond its strings in the
    agent's process (a pydantic object and a ``__dict__`` of 7 fields); a node of a
    table costs its two strings and 4 bytes. Indexing or iterating builds the models
    (``model_construct``): the running source reads :meth:`rows` instead. Read-only,
    equal to a list of the same nodes, and pickled as its columns.
    """

    __slots__ = ("_names", "_shape_ids", "_shapes", "_targets")

    def __init__(
        self,
        names: tuple[str, ...],
        targets: tuple[str, ...],
        shape_ids: array[int],
        shapes: tuple[NodeShape, ...],
    ) -> None:
        self._names = names
        self._targets = targets
        self._shape_ids = shape_ids
        self._shapes = shapes

    @classmethod
    def of(cls, nodes: Iterable[OpcuaNodeConfig]) -> NodeTable:
        """``nodes`` as a table (a table is returned as it is)."""
        if isinstance(nodes, NodeTable):
            return nodes
        names: list[str] = []
        targets: list[str] = []
        shape_ids = array("I")
        numbers: dict[tuple[Any, ...], int] = {}
        shapes: list[NodeShape] = []
        for one in nodes:
            name, node, path, *values = _ROW_FIELDS(one)
            key = (bool(path), *values, frozenset(one.model_fields_set))
            number = numbers.get(key)
            if number is None:  # one shape per distinct rest-of-the-node
                number = numbers[key] = len(shapes)
                shapes.append(NodeShape(*key))
            names.append(name)
            targets.append(path or node)
            shape_ids.append(number)
        return cls(tuple(names), tuple(targets), shape_ids, tuple(shapes))

    @property
    def shapes(self) -> tuple[NodeShape, ...]:
        """The distinct shapes, each once."""
        return self._shapes

    def rows(self) -> Iterator[NodeRow]:
        """Every node as a :class:`NodeRow`, in order."""
        for index in range(len(self._names)):
            yield self.row(index)

    def row(self, index: int) -> NodeRow:
        """Node ``index`` as a :class:`NodeRow`."""
        shape, target = self._shapes[self._shape_ids[index]], self._targets[index]
        node, path = ("", target) if shape.by_path else (target, "")
        return NodeRow(
            self._names[index], node, path, shape.unit, shape.asset, shape.description, shape.write
        )

    def __len__(self) -> int:
        return len(self._names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, NodeTable):
            return list(self.rows()) == list(other.rows())
        return self._equals_sequence(other)

    def __reduce__(self) -> tuple[Any, ...]:
        return (NodeTable, (self._names, self._targets, self._shape_ids, self._shapes))

    def __repr__(self) -> str:
        return f"NodeTable({len(self)} nodes, {len(self._shapes)} shapes)"

    def _model(self, index: int) -> OpcuaNodeConfig:
        row = self.row(index)
        fields_set = set(self._shapes[self._shape_ids[index]].fields_set)
        return OpcuaNodeConfig.model_construct(fields_set, **row._asdict())


# A list when validated, a NodeTable in the running agent (OpcuaGroupConfig.compact).
NodeList = Annotated[Sequence[OpcuaNodeConfig], GetPydanticSchema(list_schema(OpcuaNodeConfig))]
