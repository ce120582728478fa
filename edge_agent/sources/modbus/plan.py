"""The request planner: the fewest Modbus reads that cover the signals due now.

Signals are grouped per unit and table, sorted by address and merged greedily
into blocks: a signal joins the open block when the hole before it is at most
``gap`` registers (or bits), the block stays within the size limit (125
registers / 2000 bits by the protocol) and the hole crosses no *fence*. On a
line with these constraints, extending each block as far as it can go is
optimal (an exchange argument: any other first block ends no further right).

A fence is where the device refused a block whose parts it accepts: a hole
holding illegal addresses, or (zero width) a cut where a block grew longer than
the device allows. The source learns fences by splitting a refused block; the
planner then never joins two signals across one again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby

from edge_agent.sources.modbus.codec import BIT_TABLES, Table

MAX_REGISTERS = 125
MAX_BITS = 2000


@dataclass(frozen=True, slots=True)
class Point:
    """One signal as the planner sees it.

    Attributes:
        key: the caller's index of the signal.
        unit: Modbus unit id (slave id).
        table: coil, discrete, holding or input.
        address: first register or bit (0-based, as on the wire).
        width: registers (or bits) it occupies.
    """

    key: int
    unit: int
    table: Table
    address: int
    width: int

    @property
    def end(self) -> int:
        """One past the last register or bit."""
        return self.address + self.width


@dataclass(frozen=True, slots=True)
class Request:
    """One read on the wire and the points it serves."""

    unit: int
    table: Table
    start: int
    count: int
    points: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class Limits:
    """Size and hole limits of blocks.

    Attributes:
        max_registers: registers per read (the protocol allows 125).
        max_bits: coils or discrete inputs per read (the protocol allows 2000).
        register_gap: unused registers a block may span to join two signals.
        bit_gap: unused bits a block may span to join two signals.
    """

    max_registers: int = MAX_REGISTERS
    max_bits: int = MAX_BITS
    register_gap: int = 10
    bit_gap: int = 100

    def size_and_gap(self, table: Table) -> tuple[int, int]:
        """The (max size, max gap) for ``table``."""
        if table in BIT_TABLES:
            return self.max_bits, self.bit_gap
        return self.max_registers, self.register_gap


@dataclass
class Fences:
    """Address ranges learned to be refused, per (unit, table)."""

    ranges: dict[tuple[int, Table], list[tuple[int, int]]] = field(default_factory=dict)

    def add(self, unit: int, table: Table, start: int, end: int) -> None:
        """Never join signals across ``start..end`` again (``start == end``: a cut)."""
        self.ranges.setdefault((unit, table), []).append((start, end))

    def crossed(self, unit: int, table: Table, start: int, end: int) -> bool:
        """Whether a hole from ``start`` to ``end`` (both included) meets a fence."""
        return any(
            start <= f_end and f_start <= end
            for f_start, f_end in self.ranges.get((unit, table), ())
        )


def plan(points: Iterable[Point], limits: Limits, fences: Fences | None = None) -> list[Request]:
    """Group ``points`` into the fewest requests under ``limits`` and ``fences``."""
    fences = fences or Fences()
    ordered = sorted(points, key=lambda p: (p.unit, p.table, p.address, p.width))
    requests: list[Request] = []
    for (unit, table), group in groupby(ordered, key=lambda p: (p.unit, p.table)):
        requests.extend(_plan_line(list(group), unit, table, limits, fences))
    return requests


def _plan_line(
    points: Sequence[Point], unit: int, table: Table, limits: Limits, fences: Fences
) -> list[Request]:
    size, gap = limits.size_and_gap(table)
    requests: list[Request] = []
    members: list[Point] = [points[0]]
    start, end = points[0].address, points[0].end
    for point in points[1:]:
        hole = point.address - end
        joins = (
            hole <= gap
            and max(end, point.end) - start <= size
            and (hole < 0 or not fences.crossed(unit, table, end, point.address))
        )
        if joins:
            members.append(point)
            end = max(end, point.end)
            continue
        requests.append(Request(unit, table, start, end - start, tuple(members)))
        members, start, end = [point], point.address, point.end
    requests.append(Request(unit, table, start, end - start, tuple(members)))
    return requests


def tight(points: Sequence[Point]) -> Request:
    """One request spanning exactly ``points`` (all of one unit and table)."""
    start = min(p.address for p in points)
    end = max(p.end for p in points)
    first = points[0]
    return Request(first.unit, first.table, start, end - start, tuple(points))


def halves(request: Request) -> tuple[Request, Request]:
    """Split a refused request into two, between points, for bisection."""
    points = sorted(request.points, key=lambda p: (p.address, p.width))
    middle = len(points) // 2
    return tight(points[:middle]), tight(points[middle:])
