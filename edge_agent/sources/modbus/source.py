"""Modbus source: TCP, RTU and ASCII (serial or over TCP), the four tables, every common type.

Each tick reads exactly the signals that are due, in the fewest requests the
planner can make (see :mod:`edge_agent.sources.modbus.plan`). A Modbus
exception turns the signals of that request into BAD samples; "illegal data
address" (or "value") on a block is bisected to find the refused addresses,
which are then left out (their signals read BAD) and fenced off for later
plans. A unit that stays silent is backed off on its own
(:mod:`edge_agent.sources.modbus.health`); meanwhile its signals read BAD at once
and then once per ``BAD_REPEAT`` seconds, not every tick;
when every unit is silent, or the connection drops, ``read`` raises
:class:`SourceError` and the agent's poll loop reconnects.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from array import array
from typing import Self

from edge_agent.commands.config import WriteLimits
from edge_agent.errors import SourceError, WriteError
from edge_agent.logs import RateLimitedLog
from edge_agent.sources.modbus.codec import (
    BIT_TABLES,
    Slot,
    Table,
    decode_bits,
    decode_registers,
)
from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.endpoint import Endpoint
from edge_agent.sources.modbus.health import UnitHealth
from edge_agent.sources.modbus.link import (
    MALFORMED,
    ModbusLink,
    NoAnswer,
    Refused,
    SerialLine,
    pause,
)
from edge_agent.sources.modbus.plan import Request, halves
from edge_agent.sources.modbus.registers import ModbusRegisterConfig, RegisterTable
from edge_agent.sources.modbus.schedule import Job, SourcePlan, unit_of
from edge_agent.types import BAD_REPEAT, ReadBack, Sample, SignalInfo, signal_infos

log = logging.getLogger(__name__)

# "illegal data address" and "illegal data value" (what many devices answer to a
# block longer than they support): both are bisected to find what they refuse
_BISECTED = frozenset({2, 3})


# the poll loop wakes a little late and has work to do after read(): the last
# try of a tick must end this share of the interval before the next tick, or
# that tick is skipped
_TICK_SLACK = 0.05


class ModbusSource:
    """Polls one Modbus connection (see the module docstring)."""

    def __init__(self, config: ModbusSourceConfig) -> None:
        self.config = config
        self._plan: SourcePlan | None = None
        self._catalogue: list[SignalInfo] | None = None
        self._health: UnitHealth | None = None
        self._link: ModbusLink | None = None
        self._deferred: list[Job] = []
        self._complaints: dict[tuple[int, Table, int], int] = {}
        # A noisy RTU line flaps between garbage and good replies at every poll.
        self._lines = RateLimitedLog(log, config.name)
        self._refusals: dict[tuple[int, Table], set[int]] = {}
        # Every request on the link takes a turn: a poll tick holds it for the whole
        # tick, a write for one request (see edge_agent.sources.modbus.write).
        self._turn = asyncio.Lock()
        self._writing = asyncio.Lock()  # one write at a time: a tick waits for one request
        # The last reply of each register block: the site view shows the words behind a
        # value from it, on request only.
        self._replies: dict[tuple[Table, int, int], array[int]] = {}
        # Per unit in an outage, per block: the BAD_REPEAT slot its signals were marked in.
        self._outage_marks: dict[int, dict[tuple[Table, int, int], int]] = {}

    @functools.cached_property
    def _table(self) -> RegisterTable:
        """The registers as rows (the agent's config holds a table already: no copy)."""
        return RegisterTable.of(self.config.registers)

    def signals(self) -> list[SignalInfo]:
        """The catalogue of this source's signals, from the config.

        Built once: the agent's catalogue and the plan's fields share its entries
        and names (not a copy of each per signal).
        """
        if self._catalogue is None:
            config, table = self.config, self._table
            extras = [
                (shape.interval or config.interval, shape.asset or config.asset,
                 shape.unit, shape.description)
                for shape in table.shapes
            ]  # fmt: skip
            # config.signal_name, per row
            names = [f"{config.name}.{name}".lower() for name in table.names]
            self._catalogue = signal_infos(names, config.name, extras, table.shape_numbers)
        return list(self._catalogue)

    async def __aenter__(self) -> Self:
        config = self.config
        if self._plan is None:
            self._plan = SourcePlan(config, self._table, [info.signal for info in self.signals()])
            units = sorted({p.unit for p in self._plan.points})
            self._health = UnitHealth(config.name, units, config.backoff, config.backoff_max)
        assert self._health is not None
        self._health.reset()
        self._deferred = []
        self._outage_marks = {}
        link = ModbusLink(
            Endpoint.parse(config.url),
            SerialLine(**dict(config.serial)),  # model_dump would build a serializer
            config.request_timeout,
            config.retries,
            config.name,
            self._health.counts,
        )
        await link.open()
        self._link = link
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    async def read(self) -> list[Sample]:
        """Read what is due now, within the tick, between writes (see :meth:`_read`)."""
        async with self._turn:
            return await self._read()

    def units(self) -> UnitHealth | None:
        """Each unit's counters and outage (None before the first connect), for metrics."""
        return self._health

    def writable(self) -> dict[str, tuple[WriteLimits, bool]]:
        """The signals with a ``write:`` block: their limits, and whether they are bools."""
        return {
            self.config.signal_name(r): (r.write, r.data_type == "bool")
            for r in self._writable_registers()
            if r.write is not None
        }

    async def write(self, signal: str, value: float | int | bool) -> ReadBack:
        """Write one signal and read it back, between two poll requests.

        Raises:
            ValueError: the register's type cannot hold ``value`` (nothing sent).
            WriteError: not writable, not connected, refused, or unanswered.
            SourceError: the connection was lost during the write.
        """
        from edge_agent.sources.modbus.write import write_value

        register = next(
            (r for r in self._writable_registers() if self.config.signal_name(r) == signal), None
        )
        if register is None or register.write is None:
            raise WriteError(f"{signal} is not a writable signal of {self.config.name}")
        unit = unit_of(self.config, register)
        async with self._writing:
            link, health = self._link, self._health
            if link is None or health is None:
                raise WriteError(f"{self.config.name}: not connected to {self.config.url}")
            if not health.available(unit, asyncio.get_running_loop().time()):
                raise WriteError(f"{self.config.name}: unit {unit} is not answering")
            return await write_value(link, self._turn, register, unit, value)

    def _writable_registers(self) -> list[ModbusRegisterConfig]:
        """The registers with a ``write:`` block, as models (built only for those)."""
        table = self._table
        return [table[i] for i, row in enumerate(table.rows()) if row.shape.write is not None]

    async def _read(self) -> list[Sample]:
        """Read what is due now, within the tick (see :meth:`_queue` for the order).

        A try goes only if the time left in the tick covers its worst case,
        ``timeout x (retries + 1)``; otherwise it waits for the next tick, so a
        tick is not overrun by a try that could wait. The first try of a tick
        always goes, and so does every try when the worst case exceeds a whole
        tick (it could never fit; ``check-config`` warns of such a config).

        Raises:
            SourceError: the connection is lost, or no unit answers.
        """
        if self._plan is None or self._link is None or self._health is None:
            raise SourceError(f"{self.config.name}: read() outside 'async with'")
        loop = asyncio.get_running_loop()
        now = loop.time()
        jobs, refused = self._plan.due(now)
        samples = _bad([self._plan.names[k] for k in refused], time.time())
        usable = self.config.interval * (1 - _TICK_SLACK)
        budget = self._worst if self._worst <= usable else 0.0
        sent = False
        for request, slots in self._queue(jobs):
            if not self._health.available(request.unit, now):
                samples.extend(self._outage_bad(request, slots))
            elif sent and now + usable - loop.time() < budget:
                samples.extend(self._defer(request, slots))
            else:
                if sent:
                    await pause(self.config.pause)
                sent = True
                samples.extend((await self._serve(request, slots, now))[0])
        if jobs and self._health.all_down():
            raise SourceError(f"{self.config.name}: no unit answers on {self.config.url}")
        return samples

    @functools.cached_property
    def _worst(self) -> float:
        """What one try costs when its unit does not answer (once: the config walks every tag)."""
        return self.config.request_timeout * (self.config.retries + 1)

    def _queue(self, jobs: list[Job]) -> list[Job]:
        """This tick's tries in order: units that answered their last try first, then the rest.

        A try at a unit in an outage (or not heard from yet) may cost a full
        timeout: after the others, it delays no one. Within each group, tries
        deferred from the last tick go first; a due try equal to one of them
        is made once.
        """
        assert self._health is not None
        carried, self._deferred = self._deferred, []
        ordered = jobs
        if carried:  # hashing every request of every tick cost 5 % of the agent at 100k tags/s
            waiting = {request for request, _ in carried}
            ordered = carried + [job for job in jobs if job[0] not in waiting]
        trusted = [job for job in ordered if self._health.trusted(job[0].unit)]
        others = [job for job in ordered if not self._health.trusted(job[0].unit)]
        return trusted + others

    def _outage_bad(self, request: Request, slots: list[Slot]) -> list[Sample]:
        """A block of a unit in its outage: BAD at its first due tick, then once per
        ``BAD_REPEAT`` slot of the clock, as the poll loop marks a down source (a dead
        unit among live ones must cost next to nothing too)."""
        ts = time.time()
        slot = math.floor(ts / BAD_REPEAT)
        marks = self._outage_marks.setdefault(request.unit, {})
        key = (request.table, request.start, request.count)
        if marks.get(key) == slot:
            return []
        marks[key] = slot
        return _bad([s.signal for s in slots], ts)

    def _defer(self, request: Request, slots: list[Slot]) -> list[Sample]:
        """Keep a try for the next tick; a unit in an outage reads BAD meanwhile."""
        assert self._health is not None
        self._deferred.append((request, slots))
        log.debug("%s: unit %d deferred to the next tick", self.config.name, request.unit)
        if self._health.down(request.unit):
            return _bad([s.signal for s in slots], time.time())
        return []  # its reading comes a tick late

    async def _serve(
        self, request: Request, slots: list[Slot], now: float
    ) -> tuple[list[Sample], bool]:
        """Make one request; return its samples and whether it returned data."""
        assert self._link is not None and self._health is not None
        if not self._health.available(request.unit, now):
            return _bad([s.signal for s in slots], time.time()), False
        reply = await self._link.read(request.table, request.unit, request.start, request.count)
        ts, ended = time.time(), asyncio.get_running_loop().time()
        if isinstance(reply, NoAnswer):
            # backoff from the end of the try: from its start, a try of
            # timeout x (retries + 1) would use up the first backoff steps
            self._health.failed(request.unit, ended, reply.reason)
            return _bad([s.signal for s in slots], ts), False
        self._health.answered(request.unit, ended)
        if self._outage_marks:  # its next outage is marked at once
            self._outage_marks.pop(request.unit, None)
        if isinstance(reply, Refused):
            if reply.code in _BISECTED:
                return await self._bisect(request, reply.code, now), False
            self._complain(request, reply.code)
            return _bad([s.signal for s in slots], ts), False
        self._complain(request, 0)
        if request.table in BIT_TABLES:
            return decode_bits(slots, reply, ts), True  # type: ignore[arg-type]
        samples = decode_registers(slots, reply, ts)
        # 2 bytes a word; the reply's list of ints costs about 36 (0.07 KB per float32 tag)
        self._replies[(request.table, request.unit, request.start)] = array("H", reply)
        return samples, True

    def raw_words(self) -> dict[str, list[int]]:
        """Signal -> the register words behind its latest value (as last read).

        For the people commissioning a device: a value that looks wrong is often a byte
        order or a scale, and the words show which. Coils and inputs bits have none.
        """
        out: dict[str, list[int]] = {}
        for info, (_, address, shape) in zip(self.signals(), self._table.rows(), strict=True):
            if shape.table in BIT_TABLES:
                continue
            words = self._words(shape.table, unit_of(self.config, shape), address, shape.width)
            if words is not None:
                out[info.signal] = words
        return out

    def _words(self, table: Table, unit: int, address: int, width: int) -> list[int] | None:
        for (t, u, start), reply in self._replies.items():
            at = address - start
            if t == table and u == unit and at >= 0 and at + width <= len(reply):
                return list(reply[at : at + width])
        return None

    async def _bisect(self, request: Request, code: int, now: float) -> list[Sample]:
        """Find what the device refuses in a block it refused with ``code``."""
        assert self._plan is not None
        if len({(p.address, p.width) for p in request.points}) == 1:
            return self._refuse(request, code, now)  # one value (or bits of one register)
        left, right = halves(request)
        left_samples, left_ok = await self._serve(left, self._plan.slots(left), now)
        await pause(self.config.pause)
        right_samples, right_ok = await self._serve(right, self._plan.slots(right), now)
        if left_ok and right_ok:
            self._plan.fence(left, right)
        return left_samples + right_samples

    def _refuse(self, request: Request, code: int, now: float) -> list[Sample]:
        """Leave out the signals of one refused value; say so the first time only."""
        assert self._plan is not None
        signals = [self._plan.names[p.key] for p in request.points]
        for point in request.points:
            self._plan.refuse(point.key, now)
        if request.start not in self._refusals.setdefault((request.unit, request.table), set()):
            self._refusals[(request.unit, request.table)].add(request.start)
            log.warning(
                "%s: unit %d refuses %s %d (Modbus exception %d); %s read BAD; retry every %.0f s",
                self.config.name, request.unit, request.table, request.start, code,
                ", ".join(signals), self.config.refused_retry,
            )  # fmt: skip
        return _bad(signals, time.time())

    def _complain(self, request: Request, code: int) -> None:
        """Log a Modbus exception on a block once, and its end once."""
        key = (request.unit, request.table, request.start)
        if code:
            self._lines.count("bad replies")
        if self._complaints.get(key, 0) == code:
            return
        if code:
            what = "a malformed reply" if code == MALFORMED else f"exception {code}"
            self._lines.log(
                logging.WARNING,
                "%s: unit %d answers %s for %s %d..%d; its signals read BAD",
                self.config.name, request.unit, what, request.table, request.start,
                request.start + request.count - 1,
            )  # fmt: skip
            self._complaints[key] = code
        else:
            self._lines.log(logging.INFO, "%s: unit %d %s %d reads again", self.config.name,
                            request.unit, request.table, request.start)  # fmt: skip
            del self._complaints[key]


def _bad(signals: list[str], ts: float) -> list[Sample]:
    return [Sample.bad(signal, ts) for signal in signals]
