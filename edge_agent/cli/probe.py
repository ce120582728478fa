"""``edge-agent probe``: read a Modbus range once and show every interpretation.

An integrator with a device and a vague manual runs, for example::

    edge-agent probe tcp://10.0.0.5:502 --device-id 1 --holding 3000 --count 4

and sees the raw registers, then each type (int16 ... float64) at each start
address in each byte/word order (ABCD, BADC, CDAB, DCBA), side by side, scaled
if asked: the plausible column gives ``data_type`` and ``byte_order`` for the
config in one look.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from edge_agent.cli.flags import renamed
from edge_agent.sources.modbus.codec import (
    BYTE_ORDERS,
    ByteOrder,
    DataType,
    Table,
    decode_exact,
    register_count,
)
from edge_agent.sources.modbus.endpoint import Endpoint
from edge_agent.sources.modbus.link import (
    MALFORMED,
    ModbusLink,
    NoAnswer,
    Refused,
    SerialLine,
)

EX_UNAVAILABLE = 69  # sysexits: the device cannot be reached

_RENAMED_FLAGS = (
    ("--baudrate", "--baud"),
    ("--bytesize", "--data-bits"),
    ("--stopbits", "--stop-bits"),
)
"""Earlier names of the serial line flags (``serial-monitor``'s words now)."""

_TABLE_FLAGS: dict[str, Table] = {
    "holding": "holding",
    "input": "input",
    "coils": "coil",
    "discrete": "discrete",
}
_NUMERIC: tuple[DataType, ...] = (
    "int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64"
)  # fmt: skip


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``probe`` subcommand."""
    p = subparsers.add_parser(
        "probe",
        help="read a Modbus register range and print every type and byte order side by side",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument(
        "url",
        help="tcp://host:502, rtu:///dev/ttyUSB0, rtu+tcp://host:4001, ascii:///dev/ttyUSB0"
        " or ascii+tcp://host:4001",
    )
    p.add_argument("--device-id", type=int, default=1, help="Modbus unit id (slave id), default 1")
    renamed(p, "--unit", "--device-id")
    where = p.add_mutually_exclusive_group(required=True)
    for flag in _TABLE_FLAGS:
        where.add_argument(
            f"--{flag}", type=int, metavar="ADDRESS", help=f"read {flag} from ADDRESS (0-based)"
        )
    p.add_argument("--count", type=int, default=4, help="registers or bits to read, default 4")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every value by this")
    p.add_argument("--offset", type=float, default=0.0, help="then add this")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for an answer")
    p.add_argument("--baud", type=int, default=19200)
    p.add_argument("--parity", choices=("none", "even", "odd"), default="none")
    p.add_argument("--data-bits", type=int, choices=(7, 8), default=8)
    p.add_argument("--stop-bits", type=int, choices=(1, 2), default=1)
    for old, new in _RENAMED_FLAGS:
        renamed(p, old, new)
    p.set_defaults(func=probe)


def probe(args: argparse.Namespace) -> int:
    """Run the probe; 0 when the device answered with data."""
    import asyncio

    from edge_agent.errors import SourceError

    table, start = next(
        (t, getattr(args, f)) for f, t in _TABLE_FLAGS.items() if getattr(args, f) is not None
    )
    try:
        _check_range(table, start, args.count)
        endpoint = Endpoint.parse(args.url)
    except ValueError as exc:
        return _fail(str(exc), 2)
    try:
        reply = asyncio.run(_read(args, endpoint, table, start))
    except SourceError as exc:
        return _fail(str(exc), EX_UNAVAILABLE)
    if isinstance(reply, str):
        return _fail(reply, 1)
    if table in ("coil", "discrete"):
        lines = render_bits(start, [bool(b) for b in reply])
    else:
        lines = render_registers(start, [int(r) for r in reply], args.scale, args.offset)
    print(f"{endpoint} unit {args.device_id} {table} {start}..{start + args.count - 1}\n")
    print("\n".join(lines))
    return 0


def _check_range(table: Table, start: int, count: int) -> None:
    limit = 2000 if table in ("coil", "discrete") else 125
    if not 1 <= count <= limit or not 0 <= start <= 65535 or start + count > 65536:
        raise ValueError(f"--count must be 1..{limit}, within addresses 0..65535")


def _fail(message: str, code: int) -> int:
    print(f"edge-agent probe: {message}", file=sys.stderr)
    return code


async def _read(
    args: argparse.Namespace, endpoint: Endpoint, table: Table, start: int
) -> list[int] | list[bool] | str:
    """One read; the values, or a sentence saying why there are none."""
    line = SerialLine(args.baud, args.parity, args.data_bits, args.stop_bits)
    link = ModbusLink(endpoint, line, args.timeout, retries=0, name="probe")
    await link.open()
    try:
        reply = await link.read(table, args.device_id, start, args.count)
    finally:
        link.close()
    if isinstance(reply, Refused):
        why = _EXCEPTIONS.get(reply.code, "unknown")
        return f"unit {args.device_id} refused the read: Modbus exception {reply.code} ({why})"
    if isinstance(reply, NoAnswer):
        return f"unit {args.device_id} did not answer within {args.timeout} s ({reply.reason})"
    return reply


_EXCEPTIONS = {
    MALFORMED: "malformed reply: it does not fit the request",
    1: "illegal function: the device lacks this table",
    2: "illegal data address: nothing at some address in the range",
    3: "illegal data value: often a count above what the device supports",
    4: "device failure",
    6: "device busy",
}


def render_registers(
    start: int, registers: Sequence[int], scale: float = 1.0, offset: float = 0.0
) -> list[str]:
    """The raw registers, then every type in every order at every start address."""
    lines = [f"{'address':>8}  {'hex':>6}  {'dec':>6}  bits (15..0)"]
    for i, reg in enumerate(registers):
        bits = " ".join(f"{reg:016b}"[j : j + 4] for j in range(0, 16, 4))
        lines.append(f"{start + i:>8}  0x{reg:04X}  {reg:>6}  {bits}")
    note = "" if (scale, offset) == (1.0, 0.0) else f"   (values * {scale:g} + {offset:g})"
    lines += ["", f"{'address':>8}  {'type':<8}" + "".join(f"{o:>24}" for o in BYTE_ORDERS) + note]
    for data_type in _NUMERIC:
        width = register_count(data_type)
        orders: tuple[ByteOrder, ...] = BYTE_ORDERS if width > 1 else ("ABCD", "BADC")
        for i in range(len(registers) - width + 1):
            cells = [
                _cell(registers[i : i + width], data_type, o, scale, offset) if o in orders else ""
                for o in BYTE_ORDERS
            ]
            lines.append(f"{start + i:>8}  {data_type:<8}" + "".join(f"{c:>24}" for c in cells))
    return lines


def _cell(
    registers: Sequence[int], data_type: DataType, order: ByteOrder, scale: float, offset: float
) -> str:
    raw = decode_exact(registers, data_type, order)
    if isinstance(raw, float) and not math.isfinite(raw):
        return str(raw)
    if (scale, offset) == (1.0, 0.0) and isinstance(raw, int):
        return str(raw)
    digits = 7 if data_type == "float32" else 15
    return f"{raw * scale + offset:.{digits}g}"


def render_bits(start: int, bits: Sequence[bool]) -> list[str]:
    """Bits, eight to a line, with the address of the first of each line."""
    lines = [f"{'address':>8}  bits (first address leftmost)"]
    for i in range(0, len(bits), 8):
        chunk = " ".join("1" if b else "0" for b in bits[i : i + 8])
        lines.append(f"{start + i:>8}  {chunk}")
    return lines
