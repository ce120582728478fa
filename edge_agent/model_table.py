"""A list of config models kept as columns in the running agent, and its schema.

A source with thousands of signals validates them as pydantic models, then keeps
them as a table of columns (Modbus registers, OPC UA nodes): a row costs its
strings and a few bytes, not a model. :class:`ModelTable` is what such a table
shares: it is read-only, indexing or iterating builds the models, and it equals a
list of the same models. :func:`list_schema` validates a list and dumps any
sequence (a table too) as one.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, overload

from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

M = TypeVar("M")


class ModelTable(Sequence[M]):
    """A read-only sequence of models built on demand from columns.

    Subclasses give ``__len__`` and ``_model(index)``; they may compare two tables
    of their own kind column by column in ``__eq__`` and defer to
    :meth:`_equals_sequence` for anything else.
    """

    __slots__ = ()

    def _model(self, index: int) -> M:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> M: ...

    @overload
    def __getitem__(self, index: slice) -> list[M]: ...

    def __getitem__(self, index: int | slice) -> M | list[M]:
        if isinstance(index, slice):
            return [self._model(i) for i in range(len(self))[index]]
        return self._model(range(len(self))[index])

    def __iter__(self) -> Iterator[M]:
        return (self._model(i) for i in range(len(self)))

    def _equals_sequence(self, other: object) -> bool:
        """Equal to a list (any sequence but text) of the same models, model by model."""
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(self) == len(other) and all(map(operator.eq, self, other))
        unknown: bool = NotImplemented  # the other side may know how to compare
        return unknown

    __hash__ = None  # type: ignore[assignment]  # like the list it stands for


def list_schema(model: type[Any]) -> Callable[[Any, GetCoreSchemaHandler], CoreSchema]:
    """For ``GetPydanticSchema``: a list of ``model`` (errors say "list"), dumping any
    sequence as one."""

    def schema_of(_type: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema = handler(list[model])  # type: ignore[valid-type]
        as_list = core_schema.wrap_serializer_function_ser_schema(
            lambda value, serialize: serialize(list(value)), schema=dict(schema)
        )
        return {**schema, "serialization": as_list}

    return schema_of
