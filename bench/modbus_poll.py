"""Modbus polling cost: the agent's Modbus source against a minimal hand-written loop.

``python -m bench.modbus_poll [--seconds 10]`` starts a pymodbus TCP server in
its own process (so its CPU is not counted), then runs each case in a fresh
worker process: 500 and 2,000 tags at 1 s and 100 ms, once with the agent's
:class:`ModbusSource` and once with a minimal loop (raw pymodbus reads of
125-register blocks, struct decode, insert into sqlite3). Both workers use the
same drift-free tick loop and insert their samples into sqlite3 the same way,
so the difference is the source's read path. Tags are 3/4 uint16 scaled by
0.1 and 1/4 float32, contiguous. Requests are counted by the server.

The agent's full runtime (twin, detectors) is not in this measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

CASES = [(500, 1.0), (2000, 1.0), (500, 0.1), (2000, 0.1)]
MAX_BLOCK = 125
SCALES = {"uint16": 0.1, "float32": 1.0}
HEADER = (
    "| tags | interval | loop | tags/s | requests/s | requests/tick | CPU s per 1000 tags"
    " | peak RSS MB | skipped ticks |"
)


def tag_layout(tags: int) -> list[tuple[str, int, str]]:
    """(name, address, data_type) of each tag: every fourth one a float32."""
    layout, address = [], 0
    for i in range(tags):
        kind = "float32" if i % 4 == 3 else "uint16"
        layout.append((f"t{i}", address, kind))
        address += 2 if kind == "float32" else 1
    return layout


def register_values(tags: int) -> list[int]:
    """Plausible register contents for the layout."""
    values: list[int] = []
    for i, (_, _, kind) in enumerate(tag_layout(tags)):
        if kind == "float32":
            values += struct.unpack(">2H", struct.pack(">f", 20.0 + i / 7))
        else:
            values.append((i * 37) % 65536)
    return values


# --------------------------------------------------------------- the server --


def serve(port: int, registers: list[int], counter: Any, ready: Any) -> None:
    """Run a pymodbus TCP server holding ``registers`` from address 0."""
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    def trace(sending: bool, pdu: Any) -> Any:
        if not sending:
            counter.value += 1
        return pdu

    async def main() -> None:
        data = SimData(0, values=registers, datatype=DataType.REGISTERS)
        device = SimDevice(1, simdata=([data_bit()], [data_bit()], [data], [data_bit_regs()]))
        server = ModbusTcpServer([device], address=("127.0.0.1", port), trace_pdu=trace)
        await server.serve_forever(background=True)
        ready.set()
        await asyncio.Event().wait()

    def data_bit() -> Any:
        return SimData(0, count=16, values=False, datatype=DataType.BITS)

    def data_bit_regs() -> Any:
        return SimData(0, count=1, values=0, datatype=DataType.REGISTERS)

    asyncio.run(main())


# -------------------------------------------------------------- the workers --


async def tick_loop(
    interval: float, seconds: float, tick: Callable[[], Awaitable[int]]
) -> dict[str, Any]:
    """Call ``tick`` every ``interval`` on loop.time(), skipping overruns; measure."""
    loop = asyncio.get_running_loop()
    await tick()  # warm up: connect paths, plan caches, sqlite statement cache
    cpu0, start = time.process_time(), loop.time()
    samples = ticks = skipped = 0
    for k in range(round(seconds / interval)):
        lag = loop.time() - (start + k * interval)
        if lag >= interval:  # the previous tick overran this one: skip it, never queue
            skipped += 1
            continue
        if lag < 0:
            await asyncio.sleep(-lag)
        samples += await tick()
        ticks += 1
    cpu = time.process_time() - cpu0
    await asyncio.sleep(max(0.0, start + round(seconds / interval) * interval - loop.time()))
    wall = loop.time() - start
    return {"samples": samples, "ticks": ticks, "skipped": skipped, "wall": wall, "cpu": cpu}


def open_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE samples (signal TEXT, ts REAL, value REAL, quality TEXT)")
    return db


INSERT = "INSERT INTO samples (signal, ts, value, quality) VALUES (?, ?, ?, ?)"


async def agent_worker(
    port: int, tags: int, interval: float, seconds: float, db: sqlite3.Connection
) -> dict[str, Any]:
    from edge_agent.sources.modbus.config import ModbusSourceConfig
    from edge_agent.sources.modbus.source import ModbusSource

    registers = [
        {"name": name, "address": address, "data_type": kind, "scale": SCALES[kind]}
        for name, address, kind in tag_layout(tags)
    ]
    config = ModbusSourceConfig.model_validate({
        "type": "modbus", "name": "bench", "url": f"tcp://127.0.0.1:{port}",
        "interval": f"{round(interval * 1000)}ms", "registers": registers,
    })  # fmt: skip
    source = ModbusSource(config)

    async def tick() -> int:
        samples = await source.read()
        db.executemany(INSERT, [(s.signal, s.ts, s.value, s.quality.value) for s in samples])
        db.commit()
        return len(samples)

    async with source:
        return await tick_loop(interval, seconds, tick)


async def raw_worker(
    port: int, tags: int, interval: float, seconds: float, db: sqlite3.Connection
) -> dict[str, Any]:
    """The minimal loop an integrator would write by hand."""
    from pymodbus.client import AsyncModbusTcpClient

    blocks: list[tuple[int, int, list[tuple[str, int, str]]]] = []
    for name, address, kind in tag_layout(tags):
        end = address + (2 if kind == "float32" else 1)
        if blocks and end - blocks[-1][0] <= MAX_BLOCK:
            blocks[-1] = (
                blocks[-1][0],
                end - blocks[-1][0],
                [*blocks[-1][2], (name, address, kind)],
            )
        else:
            blocks.append((address, end - address, [(name, address, kind)]))
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    await client.connect()

    async def tick() -> int:
        rows = []
        for start, count, members in blocks:
            reply = await client.read_holding_registers(start, count=count, device_id=1)
            ts = time.time()
            raw = struct.pack(f">{count}H", *reply.registers)
            for name, address, kind in members:
                offset = (address - start) * 2
                if kind == "float32":
                    rows.append(
                        (f"bench.{name}", ts, struct.unpack_from(">f", raw, offset)[0], "good")
                    )
                else:
                    rows.append(
                        (
                            f"bench.{name}",
                            ts,
                            struct.unpack_from(">H", raw, offset)[0] * 0.1,
                            "good",
                        )
                    )
        db.executemany(INSERT, rows)
        db.commit()
        return len(rows)

    try:
        return await tick_loop(interval, seconds, tick)
    finally:
        client.close()


def worker(kind: str, port: int, tags: int, interval: float, seconds: float) -> None:
    """Run one case and print its measurements as one JSON line."""
    with tempfile.TemporaryDirectory() as folder:
        db = open_db(Path(folder) / "bench.db")
        run = agent_worker if kind == "agent" else raw_worker
        result = asyncio.run(run(port, tags, interval, seconds, db))
        db.close()
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


# ---------------------------------------------------------------- the driver --


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_case(
    kind: str, port: int, tags: int, interval: float, seconds: float, counter: Any
) -> dict[str, Any]:
    before = counter.value
    out = subprocess.run(
        [sys.executable, "-m", "bench.modbus_poll", "--worker", kind, "--port", str(port),
         "--tags", str(tags), "--interval", str(interval), "--seconds", str(seconds)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["requests"] = counter.value - before
    return result


def import_rss() -> str:
    """Peak RSS right after the imports of each worker, to separate import cost from loop cost."""
    probe = (
        "import resource, sqlite3, pymodbus.client{}; "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    sizes = []
    for extra in ("", ", edge_agent.sources.modbus.source"):
        out = subprocess.run(
            [sys.executable, "-c", probe.format(extra)],
            capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
        )  # fmt: skip
        sizes.append(int(out.stdout) / 1024)
    return (
        f"Peak RSS after imports alone: minimal loop (pymodbus, sqlite3) {sizes[0]:.1f} MB, "
        f"agent source (adds pydantic and the config models) {sizes[1]:.1f} MB; "
        "the rest of each column is the loop's own memory."
    )


def table(rows: list[tuple[int, float, dict[str, Any], dict[str, Any]]]) -> str:
    lines = [
        HEADER,
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for tags, interval, agent, raw in rows:
        for name, r in (("agent", agent), ("minimal", raw)):
            ticks = r["ticks"] + 1  # the warm-up tick made requests too
            lines.append(
                f"| {tags} | {interval:g} s | {name} | {r['samples'] / r['wall']:,.0f} | "
                f"{r['requests'] / r['wall']:,.1f} | {r['requests'] / ticks:.1f} | "
                f"{r['cpu'] / r['samples'] * 1000:.4f} | {r['rss_mb']:.1f} | {r['skipped']} |"
            )
    return "\n".join(lines)


def ratios(rows: list[tuple[int, float, dict[str, Any], dict[str, Any]]]) -> str:
    lines = [
        "| tags | interval | CPU per tag, agent / minimal | requests, agent / minimal |",
        "|---:|---:|---:|---:|",
    ]
    for tags, interval, agent, raw in rows:
        cpu = (agent["cpu"] / agent["samples"]) / (raw["cpu"] / raw["samples"])
        req = (agent["requests"] / (agent["ticks"] + 1)) / (raw["requests"] / (raw["ticks"] + 1))
        lines.append(f"| {tags} | {interval:g} s | {cpu:.2f} | {req:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each case")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    parser.add_argument("--worker", choices=("agent", "raw"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--tags", type=int)
    parser.add_argument("--interval", type=float)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.port, args.tags, args.interval, args.seconds)
        return
    port, counter, ready = free_port(), multiprocessing.Value("q", 0), multiprocessing.Event()
    server = multiprocessing.Process(
        target=serve, args=(port, register_values(2000), counter, ready), daemon=True
    )
    server.start()
    ready.wait(30)
    rows = []
    try:
        for tags, interval in CASES:
            raw = run_case("raw", port, tags, interval, args.seconds, counter)
            agent = run_case("agent", port, tags, interval, args.seconds, counter)
            rows.append((tags, interval, agent, raw))
            print(f"{tags} tags @ {interval:g} s: agent {agent}, minimal {raw}", file=sys.stderr)
    finally:
        server.terminate()
        server.join()
    body = (
        f"{__doc__.split(chr(10) + chr(10), 1)[1].strip() if __doc__ else ''}\n\n"
        f"Each case ran {args.seconds:g} s after one warm-up tick, in its own process; "
        f"CPU is user+system time of that process during the loop.\n\n"
        f"{table(rows)}\n\n{import_rss()}\n\n"
        f"Ratios (goal: CPU within 1.5x, never more requests):\n\n{ratios(rows)}\n"
    )
    print(body)
    if not args.no_write:
        from bench.report import write_section

        write_section("modbus_poll", "Modbus polling: agent source vs minimal loop", body)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
