"""A Modbus source's plan: what it learned and decided, and the requests due at a tick.

Kept apart from :mod:`edge_agent.sources.modbus.source` (which talks to the link):
the fields of each register shape, the schedule of intervals, the fences learned
from refused blocks, the signals left out as refused, and the cached requests
for each set of due intervals.
"""

from __future__ import annotations

from edge_agent.sources.modbus.codec import Field, Slot, Slots
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.plan import Fences, Limits, Point, Request, plan
from edge_agent.sources.modbus.registers import ModbusRegisterConfig, RegisterShape, RegisterTable
from edge_agent.sources.poll import Schedule

Job = tuple[Request, list[Slot]]


class SourcePlan:
    """What the source learned and decided: fields, schedule, fences, refusals."""

    def __init__(self, config: ModbusSourceConfig, table: RegisterTable, names: list[str]) -> None:
        self.config = config
        self.names = names
        self.table = table
        # One Field per shape, not per signal (80 bytes each): the slots get the names.
        # Keyed by identity: the table holds each shape once, and hashing one is slow.
        self._fields = {id(shape): field_of(shape) for shape in table.shapes}
        rows = list(table.rows())
        self.points = [
            Point(i, unit_of(config, row.shape), row.shape.table, row.address, row.shape.width)
            for i, row in enumerate(rows)
        ]
        self.intervals = [row.shape.interval or config.interval for row in rows]
        self.schedule = Schedule(self.intervals, config.interval)
        self.limits = Limits(
            config.max_registers, config.max_bits, config.register_gap, config.bit_gap
        )
        self.fences = Fences()
        self.refused: dict[int, float] = {}  # point key -> monotonic time to try again
        self._cache: dict[tuple[float, ...], tuple[list[Job], list[int]]] = {}

    def due(self, now: float) -> tuple[list[Job], list[int]]:
        """The requests to make now, and the keys of due signals left out as refused."""
        if any(at <= now for at in self.refused.values()):
            self.refused = {k: at for k, at in self.refused.items() if at > now}
            self._cache.clear()
        intervals = self.schedule.due(now)
        cached = self._cache.get(intervals)
        if cached is None:
            wanted = set(intervals)
            due = [p for p in self.points if self.intervals[p.key] in wanted]
            requests = plan((p for p in due if p.key not in self.refused), self.limits, self.fences)
            jobs = [(r, self.slots(r)) for r in requests]
            cached = self._cache[intervals] = (jobs, [p.key for p in due if p.key in self.refused])
        return cached

    def refuse(self, key: int, now: float) -> None:
        """Leave signal ``key`` out until ``refused_retry`` has passed."""
        self.refused[key] = now + self.config.refused_retry
        self._cache.clear()

    def fence(self, left: Request, right: Request) -> None:
        """Both halves of a refused block answered: fence off what lies between them."""
        start, end = left.start + left.count, right.start
        if start <= end:
            self.fences.add(left.unit, left.table, start, end)
            self._cache.clear()

    def slots(self, request: Request) -> list[Slot]:
        """The fields of ``request`` placed in its block (one unpack for a uniform block)."""
        fields, row, names = self._fields, self.table.row, self.names
        return Slots.of(
            [
                Slot.place(fields[id(row(p.key).shape)], p.address - request.start, names[p.key])
                for p in request.points
            ]
        )


def field_of(shape: RegisterShape) -> Field:
    """The decoder of one register shape (its signal name is given by the slot)."""
    return Field("", shape.data_type, shape.byte_order, shape.bit, shape.scale, shape.offset)


def unit_of(config: ModbusSourceConfig, register: RegisterShape | ModbusRegisterConfig) -> int:
    """The unit a register is read from: its own ``device_id``, else the source's."""
    return config.device_id if register.device_id is None else register.device_id
