"""What the simulated plant costs: a physics step, a Modbus read, serving in the background.

* Physics: microseconds per :meth:`PumpSkid.at` beside a minimal raw step that
  only draws the same 16 normals and fills a dict of 11 floats.
* Modbus: median latency of reading the 12-register bank from the plant's server
  beside a bare pymodbus ``SimDevice`` server without the refresh hook, same client.
* Serving: CPU share of one core of the whole plant (Modbus, OPC UA, pty probe,
  refresh every 150 ms) while nobody polls it.

Run from the repo root: ``python -m bench.sim_plant [--seconds S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.report import write_section
from edge_agent.sim.physics import SIGNAL_NAMES, PumpSkid
from edge_agent.sim.plant import Plant, free_port
from edge_agent.sim.signal_map import REGISTER_COUNT


def per_call_us(step: Callable[[float], object], calls: int) -> float:
    """Microseconds per call of ``step(t)`` with t advancing 0.15 s each call."""
    start = time.perf_counter()
    for i in range(calls):
        step(i * 0.15)
    return (time.perf_counter() - start) / calls * 1e6


def physics(calls: int) -> tuple[float, float]:
    """(raw us, skid us) per step."""
    rng = np.random.default_rng(0)

    def raw(t: float) -> dict[str, float]:
        z = rng.standard_normal(16)
        return {name: t + float(z[i]) for i, name in enumerate(SIGNAL_NAMES)}

    skid = PumpSkid(seed=0, scenario="demo")
    return per_call_us(raw, calls), per_call_us(skid.at, calls)


async def read_latency_ms(port: int, reads: int) -> float:
    """Median milliseconds of one 12-register read."""
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    await client.connect()
    times = []
    for _ in range(reads):
        start = time.perf_counter()
        await client.read_holding_registers(0, count=REGISTER_COUNT, device_id=1)
        times.append(time.perf_counter() - start)
    client.close()
    return statistics.median(times) * 1e3


async def bare_server_latency(reads: int) -> float:
    """The same read against a bare SimDevice server (no refresh hook, no other peers)."""
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    port = free_port()
    data = [SimData(0, count=REGISTER_COUNT, values=0, datatype=DataType.REGISTERS)]
    server: Any = ModbusTcpServer(SimDevice(id=1, simdata=data), address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    try:
        return await read_latency_ms(port, reads)
    finally:
        await server.shutdown()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def plant_side(reads: int, seconds: float) -> tuple[float, float]:
    """(plant read latency ms, plant CPU % of a core while idle-serving)."""
    async with Plant(scenario="demo") as plant:
        latency = await read_latency_ms(plant.modbus_port, reads)
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        share = (cpu_seconds() - cpu0) / (time.monotonic() - wall0) * 100
    return latency, share


def main() -> None:
    """Run the three measurements and write the BENCHMARKS.md section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="idle serving time")
    parser.add_argument("--reads", type=int, default=500)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    raw_us, skid_us = physics(args.calls)
    bare_ms = asyncio.run(bare_server_latency(args.reads))
    plant_ms, share = asyncio.run(plant_side(args.reads, args.seconds))
    body = f"""
| measure | raw | plant | ratio |
|---|---|---|---|
| physics step (us, {args.calls} calls) | {raw_us:.1f} | {skid_us:.1f} | {skid_us / raw_us:.1f}x |
| Modbus read of 12 registers (median ms, {args.reads}) | {bare_ms:.3f} | {plant_ms:.3f} \
| {plant_ms / bare_ms:.2f}x |

Serving everything (Modbus, OPC UA, pty probe, refresh every 150 ms), nobody polling:
{share:.1f} % of one core over {args.seconds:g} s. Offline at a 1 s step the physics
simulates about {1e6 / skid_us / 3600:.0f} hours of plant per CPU second.
"""
    print(body)
    write_section("sim_plant", "Simulated plant: physics step, Modbus read, serving", body)


if __name__ == "__main__":
    main()
