"""OPC UA source cost: 1,000 nodes polled and 1,000 subscribed, beside minimal asyncua loops.

Run from the repository root: ``python -m bench.opcua_read [--seconds 20]``.

An asyncua server with 1,000 Double variables runs in a child process and
rewrites every value once a second. Each client scenario runs in a child
process of its own, so its CPU time and peak RSS are its own:

- ``raw-poll``: ``client.read_attributes`` of the 1,000 nodes every 100 ms, nothing else;
- ``ours-poll``: ``OpcuaSource`` with one poll group, ``read()`` every 100 ms (gateway
  timestamps, so every read yields 1,000 samples like the raw loop);
- ``raw-sub``: one asyncua subscription (100 ms) on the 1,000 nodes, counting notifications;
- ``ours-sub``: ``OpcuaSource`` with one subscribe group, ``read()`` every 100 ms.

The numbers are ratios against the raw loops of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from typing import Any

from bench.report import write_section

NODES = 1000
INTERVAL = 0.1
SCENARIOS = ("raw-poll", "ours-poll", "raw-sub", "ours-sub")


async def bench_server(port: int, count: int) -> tuple[Any, list[Any]]:
    """An asyncua server, not yet started, of ``count`` Double variables ``ns=2;s=Tag<i>`` (i)."""
    from asyncua import ua
    from asyncua.server.server import Server

    u: Any = ua
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench")
    idx = await server.register_namespace("urn:edge-agent:bench")
    folder = await server.nodes.objects.add_folder(u.NodeId("Bench", idx), "Bench")
    nodes = [
        await folder.add_variable(u.NodeId(f"Tag{i}", idx), f"Tag{i}", float(i))
        for i in range(count)
    ]
    return server, nodes


async def serve(port: int) -> None:
    """The server: NODES variables, all rewritten every second."""
    from asyncua import ua

    server, nodes = await bench_server(port, NODES)
    async with server:
        print("ready", flush=True)
        tick = 0
        while True:
            tick += 1
            for i, node in enumerate(nodes):
                await server.write_attribute_value(node.nodeid, _value(ua, tick + i))
            await asyncio.sleep(1.0)


def _value(u: Any, number: int) -> Any:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    return u.DataValue(u.Variant(float(number)), SourceTimestamp=now, ServerTimestamp=now)


class Meter:
    """Samples, CPU and wall time of the steady state (after connect and subscribe)."""

    def __init__(self) -> None:
        self.samples = 0
        self.cpu0, self.wall0 = time.process_time(), time.monotonic()

    def result(self) -> dict[str, float]:
        return {
            "samples": self.samples,
            "cpu": time.process_time() - self.cpu0,
            "wall": time.monotonic() - self.wall0,
        }


async def _ticks(seconds: float, step: Any) -> dict[str, float]:
    """Call ``await step()`` every INTERVAL on loop time for ``seconds``; count what it returns."""
    loop = asyncio.get_running_loop()
    meter = Meter()
    end = loop.time() + seconds
    next_tick = loop.time()
    while loop.time() < end:
        meter.samples += await step()
        next_tick += INTERVAL
        await asyncio.sleep(max(0.0, next_tick - loop.time()))
    return meter.result()


def _node_ids() -> list[str]:
    return [f"ns=2;s=Tag{i}" for i in range(NODES)]


async def raw_poll(url: str, seconds: float) -> dict[str, float]:
    from asyncua.client.client import Client

    async with Client(url) as client:
        nodes = [client.get_node(n) for n in _node_ids()]

        async def step() -> int:
            return len(await client.read_attributes(nodes))

        return await _ticks(seconds, step)


async def raw_sub(url: str, seconds: float) -> dict[str, float]:
    from asyncua.client.client import Client

    async with Client(url) as client:
        sub: Any = await client.create_subscription(INTERVAL * 1000, None, queue_maxsize=100_000)
        nodes = [client.get_node(n) for n in _node_ids()]
        await sub.subscribe_data_change(nodes, sampling_interval=INTERVAL * 1000)
        count = 0

        async def consume() -> None:
            nonlocal count
            async for _ in sub:
                count += 1

        task = asyncio.create_task(consume())
        await asyncio.sleep(1.0)  # the initial values, as ours skips them below
        meter, before = Meter(), count
        await asyncio.sleep(seconds)
        meter.samples = count - before
        task.cancel()
        return meter.result()


async def ours(url: str, seconds: float, mode: str) -> dict[str, float]:
    from edge_agent.sources.opcua.config import OpcuaSourceConfig
    from edge_agent.sources.opcua.source import OpcuaSource

    group: dict[str, Any] = {
        "mode": mode,
        "nodes": [{"name": f"t{i}", "node": n} for i, n in enumerate(_node_ids())],
    }
    if mode == "subscribe":
        group["publishing_interval"] = "100ms"
    config = OpcuaSourceConfig.model_validate(
        {
            "type": "opcua",
            "name": "bench",
            "url": url,
            "interval": "100ms",
            "timestamps": "gateway" if mode == "poll" else "source",
            "groups": [group],
        }
    )
    async with OpcuaSource(config) as source:
        await asyncio.sleep(1.0)
        await source.read()  # the initial values, as the raw loop skips them

        async def step() -> int:
            return len(await source.read())

        return await _ticks(seconds, step)


def client_main(scenario: str, url: str, seconds: float) -> None:
    """One scenario in this process; prints a JSON line with its counts and costs."""
    runners = {
        "raw-poll": lambda: raw_poll(url, seconds),
        "raw-sub": lambda: raw_sub(url, seconds),
        "ours-poll": lambda: ours(url, seconds, "poll"),
        "ours-sub": lambda: ours(url, seconds, "subscribe"),
    }
    result = asyncio.run(runners[scenario]())
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.opcua_read", *args], stdout=subprocess.PIPE, text=True
    )


def main() -> None:
    """Start the server, run each scenario once, write the table into BENCHMARKS.md."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    if args.client:
        client_main(args.client, args.url, args.seconds)
        return
    results = run_all(args.seconds)
    body = table(results, args.seconds)
    print(body)
    if not args.no_write:
        write_section("opcua_read", "OPC UA source: 1,000 nodes polled and subscribed", body)


def run_all(seconds: float) -> dict[str, dict[str, float]]:
    """Each scenario against one server child process."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = _spawn("--serve", str(port))
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "ready"
        url = f"opc.tcp://127.0.0.1:{port}/bench"
        results = {}
        for scenario in SCENARIOS:
            child = _spawn("--client", scenario, "--url", url, "--seconds", str(seconds))
            out, _ = child.communicate()
            results[scenario] = json.loads(out.strip().splitlines()[-1])
        return results
    finally:
        server.terminate()
        server.wait()


def table(results: dict[str, dict[str, float]], seconds: float) -> str:
    """A markdown table, with our cost as a ratio of the raw loop's."""
    rows = [
        f"{NODES} Double nodes on a local asyncua server (child process, every value rewritten "
        f"each second); each client in its own process for {seconds:.0f} s, ticking every "
        f"{INTERVAL * 1000:.0f} ms, measured after connect and initial values. CPU is the "
        "client process's user+system time; RSS its peak (asyncua imported in all four).",
        "",
        "| scenario | samples/s | CPU % of a core | CPU µs per sample | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in SCENARIOS:
        r = results[name]
        rate = r["samples"] / r["wall"]
        per = r["cpu"] / r["samples"] * 1e6 if r["samples"] else float("nan")
        cpu_pct = 100 * r["cpu"] / r["wall"]
        rows.append(f"| {name} | {rate:,.0f} | {cpu_pct:.1f} | {per:.1f} | {r['rss_mb']:.0f} |")
    rows.append("")
    for kind in ("poll", "sub"):
        raw, mine = results[f"raw-{kind}"], results[f"ours-{kind}"]
        ratio = (mine["cpu"] / max(mine["samples"], 1)) / (raw["cpu"] / max(raw["samples"], 1))
        rows.append(f"- {kind}: our CPU per sample is {ratio:.2f}x the raw asyncua loop's.")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
