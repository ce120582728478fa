"""Modbus source: TCP, RTU and RTU over TCP, the four tables, every common type.

Each tick reads exactly the signals that are due, in the fewest requests the
planner can make (see :mod:`edge_agent.sources.modbus_plan`). A Modbus
exception turns the signals of that request into BAD samples; "illegal data
address" (or "value") on a block is bisected to find the refused addresses,
which are then left out (their signals read BAD) and fenced off for later
plans. A unit that stays silent is backed off on its own
(:mod:`edge_agent.sources.modbus_health`);
when every unit is silent, or the connection drops, ``read`` raises
:class:`SourceError` and the agent's poll loop reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Literal, Self

from pydantic import Field as PydanticField
from pydantic import field_validator, model_validator

from edge_agent.errors import SourceError
from edge_agent.logs import RateLimitedLog
from edge_agent.schema import Duration, StrictModel
from edge_agent.sources.modbus_codec import (
    BIT_TABLES,
    ByteOrder,
    DataType,
    Field,
    Slot,
    Table,
    decode_bits,
    decode_registers,
    register_count,
)
from edge_agent.sources.modbus_health import UnitHealth
from edge_agent.sources.modbus_link import (
    MALFORMED,
    Endpoint,
    ModbusLink,
    NoAnswer,
    Refused,
    SerialLine,
    pause,
)
from edge_agent.sources.modbus_plan import Fences, Limits, Point, Request, Schedule, halves, plan
from edge_agent.types import Sample, SignalInfo

log = logging.getLogger(__name__)

# "illegal data address" and "illegal data value" (what many devices answer to a
# block longer than they support): both are bisected to find what they refuse
_BISECTED = frozenset({2, 3})


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
    unit_id: int | None = PydanticField(default=None, ge=0, le=255)
    interval: Duration | None = None
    asset: str = ""
    description: str = ""

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
        return self

    @property
    def width(self) -> int:
        """Registers (or bits) the value occupies."""
        return 1 if self.table in BIT_TABLES else register_count(self.data_type)


class SerialConfig(StrictModel):
    """Serial line settings for ``rtu://`` URLs."""

    baudrate: int = PydanticField(default=19200, gt=0)
    parity: Literal["none", "even", "odd"] = "none"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1


class ModbusSourceConfig(StrictModel):
    """Config of a modbus source: one connection, one or more units behind it."""

    type: Literal["modbus"]
    name: str
    interval: Duration = 1.0
    asset: str = ""
    url: str
    unit_id: int = PydanticField(default=1, ge=0, le=255)
    serial: SerialConfig = SerialConfig()
    timeout: Annotated[Duration, PydanticField(gt=0)] = 1.0
    retries: int = PydanticField(default=1, ge=0, le=10)
    pause: Duration = 0.0
    register_gap: int = PydanticField(default=10, ge=0, le=124)
    bit_gap: int = PydanticField(default=100, ge=0, le=1999)
    max_registers: int = PydanticField(default=125, ge=1, le=125)
    max_bits: int = PydanticField(default=2000, ge=1, le=2000)
    backoff: Annotated[Duration, PydanticField(gt=0)] = 1.0
    backoff_max: Duration = 60.0
    refused_retry: Annotated[Duration, PydanticField(gt=0)] = 600.0
    registers: list[ModbusRegisterConfig] = PydanticField(min_length=1)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        Endpoint.parse(url)
        return url

    @model_validator(mode="after")
    def _signals(self) -> Self:
        if self.backoff_max < self.backoff:
            raise ValueError("backoff_max must be at least backoff")
        seen: set[str] = set()
        for register in self.registers:
            name = register.name.lower()
            if name in seen:
                raise ValueError(f"register name {register.name!r} is used twice")
            seen.add(name)
            if register.interval is not None and register.interval < self.interval:
                raise ValueError(
                    f"register {register.name!r}: interval is shorter than the source's"
                    f" interval ({self.interval} s), which is how often it polls"
                )
        return self

    def signal_name(self, register: ModbusRegisterConfig) -> str:
        """The signal name of ``register``: ``source.name``, lowercase."""
        return f"{self.name}.{register.name}".lower()


_Job = tuple[Request, list[Slot]]


class _Plan:
    """What the source learned and decided: fields, schedule, fences, refusals."""

    def __init__(self, config: ModbusSourceConfig) -> None:
        self.config = config
        registers = config.registers
        self.fields = [_field(config, r) for r in registers]
        self.points = [
            Point(i, _unit(config, r), r.table, r.address, r.width) for i, r in enumerate(registers)
        ]
        self.intervals = [r.interval or config.interval for r in registers]
        self.schedule = Schedule(self.intervals, config.interval)
        self.limits = Limits(
            config.max_registers, config.max_bits, config.register_gap, config.bit_gap
        )
        self.fences = Fences()
        self.refused: dict[int, float] = {}  # point key -> monotonic time to try again
        self._cache: dict[tuple[float, ...], tuple[list[_Job], list[int]]] = {}

    def due(self, now: float) -> tuple[list[_Job], list[int]]:
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
        """The fields of ``request`` placed in its block."""
        return [Slot.place(self.fields[p.key], p.address - request.start) for p in request.points]


def _field(config: ModbusSourceConfig, register: ModbusRegisterConfig) -> Field:
    return Field(
        config.signal_name(register),
        register.data_type,
        register.byte_order,
        register.bit,
        register.scale,
        register.offset,
    )


def _unit(config: ModbusSourceConfig, register: ModbusRegisterConfig) -> int:
    return config.unit_id if register.unit_id is None else register.unit_id


class ModbusSource:
    """Polls one Modbus connection (see the module docstring)."""

    def __init__(self, config: ModbusSourceConfig) -> None:
        self.config = config
        self._plan: _Plan | None = None
        self._health: UnitHealth | None = None
        self._link: ModbusLink | None = None
        self._complaints: dict[tuple[int, Table, int], int] = {}
        # A noisy RTU line flaps between garbage and good replies at every poll.
        self._lines = RateLimitedLog(log, config.name)
        self._refusals: dict[tuple[int, Table], set[int]] = {}

    def signals(self) -> list[SignalInfo]:
        """The catalogue of this source's signals, from the config."""
        config = self.config
        return [
            SignalInfo(
                signal=config.signal_name(r),
                source=config.name,
                interval=r.interval or config.interval,
                asset=r.asset or config.asset,
                unit=r.unit,
                description=r.description,
            )
            for r in config.registers
        ]

    async def __aenter__(self) -> Self:
        config = self.config
        if self._plan is None:
            self._plan = _Plan(config)
            units = sorted({p.unit for p in self._plan.points})
            self._health = UnitHealth(config.name, units, config.backoff, config.backoff_max)
        assert self._health is not None
        self._health.reset()
        link = ModbusLink(
            Endpoint.parse(config.url),
            SerialLine(**config.serial.model_dump()),
            config.timeout,
            config.retries,
            config.name,
        )
        await link.open()
        self._link = link
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    async def read(self) -> list[Sample]:
        """Read what is due now.

        Raises:
            SourceError: the connection is lost, or no unit answers.
        """
        if self._plan is None or self._link is None or self._health is None:
            raise SourceError(f"{self.config.name}: read() outside 'async with'")
        now = asyncio.get_running_loop().time()
        jobs, refused = self._plan.due(now)
        samples = _bad([self._plan.fields[k].signal for k in refused], time.time())
        for i, (request, slots) in enumerate(jobs):
            if i:
                await pause(self.config.pause)
            samples.extend((await self._serve(request, slots, now))[0])
        if jobs and self._health.all_down():
            raise SourceError(f"{self.config.name}: no unit answers on {self.config.url}")
        return samples

    async def _serve(
        self, request: Request, slots: list[Slot], now: float
    ) -> tuple[list[Sample], bool]:
        """Make one request; return its samples and whether it returned data."""
        assert self._link is not None and self._health is not None
        if not self._health.available(request.unit, now):
            return _bad([s.signal for s in slots], time.time()), False
        reply = await self._link.read(request.table, request.unit, request.start, request.count)
        ts = time.time()
        if isinstance(reply, NoAnswer):
            self._health.failed(request.unit, now, reply.reason)
            return _bad([s.signal for s in slots], ts), False
        self._health.answered(request.unit, now)
        if isinstance(reply, Refused):
            if reply.code in _BISECTED:
                return await self._bisect(request, reply.code, now), False
            self._complain(request, reply.code)
            return _bad([s.signal for s in slots], ts), False
        self._complain(request, 0)
        if request.table in BIT_TABLES:
            return decode_bits(slots, reply, ts), True  # type: ignore[arg-type]
        return decode_registers(slots, reply, ts), True

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
        signals = [self._plan.fields[p.key].signal for p in request.points]
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
