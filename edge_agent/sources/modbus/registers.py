"""A Modbus source's registers: their config models and the table the agent keeps.

The YAML's ``registers:`` list validates to :class:`ModbusRegisterConfig` models; the
running agent keeps them as a :class:`RegisterTable` (columns, one shared
:class:`RegisterShape` per distinct rest-of-the-register), which builds the models
back on demand, so the models and the table live in one module.
"""

from __future__ import annotations

import operator
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Annotated, Any, Literal, NamedTuple, Self

from pydantic import Field as PydanticField
from pydantic import GetPydanticSchema, model_validator

from edge_agent.commands.config import WriteLimits
from edge_agent.model_table import ModelTable, list_schema
from edge_agent.schema import Duration, StrictModel
from edge_agent.sources.modbus.codec import (
    BIT_TABLES,
    ByteOrder,
    DataType,
    Table,
    register_count,
)


class ModbusWriteConfig(WriteLimits):
    """A register's or coil's ``write:`` block (see :class:`WriteLimits`).

    Attributes:
        function: ``auto`` writes a coil with FC5, one register with FC6 and wider
            values with FC16; ``multiple`` always uses FC15 / FC16 (for devices that
            only implement those); ``single`` always FC5 / FC6 (one register at most).
    """

    function: Literal["auto", "single", "multiple"] = "auto"


class ModbusRegisterConfig(StrictModel):
    """One signal read from a Modbus device."""

    name: str = PydanticField(pattern=r"^[A-Za-z0-9_\-.]+$")
    table: Table = "holding"
    address: int = PydanticField(ge=0, le=65535)
    data_type: DataType = "uint16"
    byte_order: ByteOrder = "ABCD"
    bit: int | None = PydanticField(default=None, ge=0, le=15)
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    device_id: int | None = PydanticField(default=None, ge=0, le=255)
    interval: Duration | None = None
    asset: str = ""
    description: str = ""
    write: ModbusWriteConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.table in BIT_TABLES and self.data_type != "bool":
            raise ValueError(f"a {self.table} is a single bit: data_type must be bool")
        if self.table in BIT_TABLES and self.bit is not None:
            raise ValueError(f"bit applies to registers, not to a {self.table}")
        if self.table not in BIT_TABLES and self.data_type == "bool" and self.bit is None:
            raise ValueError("bool in a register needs bit: 0..15 (0 = least significant)")
        if self.bit is not None and self.data_type != "bool":
            raise ValueError("bit is only for data_type bool")
        if self.address + self.width > 65536:
            raise ValueError(f"{self.data_type} at {self.address} runs past address 65535")
        if self.write is not None:
            self._writable(self.write)
        return self

    def _writable(self, write: ModbusWriteConfig) -> None:
        if self.table not in ("coil", "holding"):
            raise ValueError(f"a {self.table} cannot be written: only coils and holding registers")
        if self.bit is not None:
            raise ValueError(
                "a bool in a register cannot be writable: writing one bit means rewriting"
                " the whole register, which could undo a change the device just made"
            )
        if write.function == "single" and self.width > 1:
            raise ValueError(
                f"write.function single writes one register; {self.data_type} has {self.width}"
            )
        if self.data_type != "bool":
            write.needs_range(self.data_type)
        if self.scale == 0:
            raise ValueError("a writable register needs a scale other than 0")

    @property
    def function(self) -> int:
        """The Modbus function code that writes this signal (5, 6, 15 or 16)."""
        assert self.write is not None
        multiple = self.write.function == "multiple" or (
            self.write.function == "auto" and self.width > 1
        )
        if self.table == "coil":
            return 15 if multiple else 5
        return 16 if multiple else 6

    @property
    def width(self) -> int:
        """Registers (or bits) the value occupies."""
        return 1 if self.table in BIT_TABLES else register_count(self.data_type)


_SHAPE_FIELDS = (
    "table", "data_type", "byte_order", "bit", "scale", "offset", "unit", "device_id",
    "interval", "asset", "description", "write",
)  # fmt: skip
_ROW_FIELDS = operator.attrgetter("name", "address", *_SHAPE_FIELDS)


@dataclass(frozen=True, slots=True)
class RegisterShape:
    """Everything about a register but its name and address (shared by registers alike).

    The attributes are those of :class:`ModbusRegisterConfig`; ``fields_set`` is
    which of them the YAML wrote (pydantic's ``model_fields_set``), kept so that a
    register built back from its row is the model it was, and left out of equality
    as pydantic leaves it out.
    """

    table: Table
    data_type: DataType
    byte_order: ByteOrder
    bit: int | None
    scale: float
    offset: float
    unit: str
    device_id: int | None
    interval: float | None
    asset: str
    description: str
    write: ModbusWriteConfig | None
    fields_set: frozenset[str] = dataclass_field(compare=False)

    @property
    def width(self) -> int:
        """Registers (or bits) the value occupies."""
        return 1 if self.table in BIT_TABLES else register_count(self.data_type)


class RegisterRow(NamedTuple):
    """One register of a :class:`RegisterTable`, without building its model."""

    name: str
    address: int
    shape: RegisterShape


class RegisterTable(ModelTable[ModbusRegisterConfig]):
    """A source's registers as columns: name, address and a shape number per register.

    A :class:`ModbusRegisterConfig` costs about 690 bytes per register in the agent's
    process (a pydantic object and a ``__dict__`` of 14 fields); registers differ mostly
    in name and address, so a row costs the name and 16 bytes. Indexing or iterating
    builds the models (``model_construct``, about 5 us each): the running source reads
    :meth:`rows` instead. Read-only, equal to a list of the same registers, and pickled
    as its columns.
    """

    __slots__ = ("_addresses", "_names", "_shape_ids", "_shapes")

    def __init__(
        self,
        names: tuple[str, ...],
        addresses: array[int],
        shape_ids: array[int],
        shapes: tuple[RegisterShape, ...],
    ) -> None:
        self._names = names
        self._addresses = addresses
        self._shape_ids = shape_ids
        self._shapes = shapes

    @classmethod
    def of(cls, registers: Iterable[ModbusRegisterConfig]) -> RegisterTable:
        """``registers`` as a table (a table is returned as it is)."""
        if isinstance(registers, RegisterTable):
            return registers
        names: list[str] = []
        addresses, shape_ids = array("H"), array("I")
        numbers: dict[tuple[Any, ...], int] = {}
        shapes: list[RegisterShape] = []
        for register in registers:
            name, address, *values = _ROW_FIELDS(register)
            key = (*values, frozenset(register.model_fields_set))
            number = numbers.get(key)
            if number is None:  # a shape is built once (building one per register: 4 us)
                number = numbers[key] = len(shapes)
                shapes.append(RegisterShape(*key))
            names.append(name)
            addresses.append(address)
            shape_ids.append(number)
        return cls(tuple(names), addresses, shape_ids, tuple(shapes))

    @property
    def shapes(self) -> tuple[RegisterShape, ...]:
        """The distinct shapes, each once."""
        return self._shapes

    @property
    def names(self) -> tuple[str, ...]:
        """The registers' names, in order."""
        return self._names

    @property
    def shape_numbers(self) -> Sequence[int]:
        """Each register's shape, as its index in :attr:`shapes`."""
        return self._shape_ids

    def rows(self) -> Iterator[RegisterRow]:
        """Every register as (name, address, shape), in order."""
        shapes = self._shapes
        for name, address, number in zip(
            self._names, self._addresses, self._shape_ids, strict=True
        ):
            yield RegisterRow(name, address, shapes[number])

    def row(self, index: int) -> RegisterRow:
        """Register ``index`` as (name, address, shape)."""
        return RegisterRow(
            self._names[index], self._addresses[index], self._shapes[self._shape_ids[index]]
        )

    def __len__(self) -> int:
        return len(self._names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RegisterTable):
            if self._names != other._names or self._addresses != other._addresses:
                return False
            return all(map(operator.eq, self._each_shape(), other._each_shape()))
        return self._equals_sequence(other)

    def __reduce__(self) -> tuple[Any, ...]:
        return (RegisterTable, (self._names, self._addresses, self._shape_ids, self._shapes))

    def __repr__(self) -> str:
        return f"RegisterTable({len(self)} registers, {len(self._shapes)} shapes)"

    def _each_shape(self) -> Iterator[RegisterShape]:
        return map(self._shapes.__getitem__, self._shape_ids)

    def _model(self, index: int) -> ModbusRegisterConfig:
        name, address, shape = self.row(index)
        values = {field: getattr(shape, field) for field in _SHAPE_FIELDS}
        return ModbusRegisterConfig.model_construct(
            set(shape.fields_set), name=name, address=address, **values
        )


# A list when validated, a RegisterTable in the running agent (ModbusSourceConfig.compact).
RegisterList = Annotated[
    Sequence[ModbusRegisterConfig], GetPydanticSchema(list_schema(ModbusRegisterConfig))
]
