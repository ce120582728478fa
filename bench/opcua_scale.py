"""OPC UA at scale: one source of 2,000 and 10,000 nodes, the config and the agent's start.

``python -m bench.opcua_scale [--nodes 2000 10000] [--starts 3] [--server]`` (about a
minute; with ``--server`` about two) prints, for each node count:

- ``load_config`` in this process (the best of 3, after one that builds the validators);
- ``edge-agent check-config`` from spawn to exit (median of ``--starts``);
- the config as the agent's process holds it: bytes per node of the unpickled
  :func:`~edge_agent.config_fork.load_for_running` result (``tracemalloc``);
- ``edge-agent run``: seconds from spawn to ``READY=1`` on a notify socket (median of
  ``--starts``), and VmRSS 5 s after READY, with the server unreachable (a closed port:
  the source backs off) and, with ``--server``, polling an asyncua server of that many
  Double nodes (a child process; every node read each second);
- per additional node: the VmRSS difference between the smallest and largest count.

The agent runs without a model, sink or site view: what is measured is the OPC UA
source and the twin. Nothing is written into BENCHMARKS.md. Set ``PYTHONPATH`` to a
copy of another tree's ``edge_agent`` to measure that tree (the agent's children
inherit it; the report prints which tree was imported).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from bench.agent_e2e import (
    ROOT,
    agent_command,
    compile_bytecode,
    notify_socket,
    stop_agent,
    vm_rss,
    wait_ready,
)
from bench.modbus_poll import free_port

SETTLE_S = 5.0


def config_text(nodes: int, url: str, folder: Path) -> str:
    """One OPC UA source of ``nodes`` NodeIds in one poll group, as an integrator writes it."""
    source = {
        "type": "opcua",
        "name": "plc",
        "url": url,
        "interval": "1s",
        "groups": [
            {
                "mode": "poll",
                "nodes": [{"name": f"t{i}", "node": f"ns=2;s=Tag{i}"} for i in range(nodes)],
            }
        ],
    }
    config = {
        "agent": {"id": "bench", "data_dir": str(folder / "data"), "log_level": "warning"},
        "sources": [source],
    }
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=False)


def load_seconds(path: Path) -> float:
    """``load_config`` in this process, the best of 3 (a first call builds the validators)."""
    from edge_agent.config import load_config

    load_config(path)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        load_config(path)
        times.append(time.perf_counter() - start)
    return min(times)


def held_bytes(path: Path) -> int:
    """Bytes the unpickled, trimmed config holds, as the agent's process gets it."""
    from edge_agent.config_fork import load_for_running

    data = pickle.dumps(load_for_running(path), protocol=pickle.HIGHEST_PROTOCOL)
    gc.collect()
    tracemalloc.start()
    config = pickle.loads(data)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del config
    return held


def check_seconds(path: Path, starts: int) -> float:
    """``edge-agent check-config`` from spawn to exit, the median of ``starts``."""
    times = []
    for _ in range(starts):
        start = time.monotonic()
        subprocess.run([*agent_command(), "check-config", "-c", str(path)], check=True,
                       capture_output=True, cwd=ROOT)  # fmt: skip
        times.append(time.monotonic() - start)
    return statistics.median(times)


def run_agent(path: Path, folder: Path, settle: float) -> tuple[float, float]:
    """``edge-agent run``: (seconds to READY, VmRSS MB ``settle`` s after READY)."""
    with notify_socket(folder) as sock, (folder / "agent.log").open("wb") as log:
        env = {**os.environ, "NOTIFY_SOCKET": str(folder / "notify.sock")}
        spawned = time.monotonic()
        command = [*agent_command(), "run", "--config", str(path)]
        proc = subprocess.Popen(command, env=env, stderr=log, cwd=ROOT)
        try:
            wait_ready(sock, proc, 120)
            ready = time.monotonic() - spawned
            time.sleep(settle)
            rss = vm_rss(proc.pid)
        finally:
            if proc.poll() is None:
                stop_agent(proc, folder)
    return ready, rss


def agent_runs(nodes: int, url: str, starts: int) -> tuple[float, float]:
    """Median READY of ``starts`` starts, and the VmRSS of the first (settled)."""
    readies, rss = [], 0.0
    for n in range(starts):
        with tempfile.TemporaryDirectory(prefix="opcua-scale-") as name:
            folder = Path(name)
            path = folder / "agent.yaml"
            path.write_text(config_text(nodes, url, folder))
            ready, now = run_agent(path, folder, SETTLE_S if n == 0 else 0.0)
            readies.append(ready)
            rss = rss or now
    return statistics.median(readies), rss


async def serve(port: int, nodes: int) -> None:
    """An asyncua server of ``nodes`` Double variables ``ns=2;s=Tag<i>``, values fixed."""
    from bench.opcua_read import bench_server

    server, _ = await bench_server(port, nodes)
    async with server:
        print("ready", flush=True)
        await asyncio.Event().wait()


@contextmanager
def server(nodes: int) -> Iterator[tuple[str, float]]:
    """The server in a child process: its URL and the seconds it took to start."""
    port = free_port()
    start = time.monotonic()
    command = [sys.executable, "-m", "bench.opcua_scale", "--serve", str(port), str(nodes)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the OPC UA server did not start")
        yield f"opc.tcp://127.0.0.1:{port}/bench", time.monotonic() - start
    finally:
        child.terminate()
        child.wait()


def measure(nodes: int, starts: int, with_server: bool) -> dict[str, float]:
    """Every figure of one node count."""
    row: dict[str, float] = {"nodes": nodes}
    with tempfile.TemporaryDirectory(prefix="opcua-scale-") as name:
        path = Path(name) / "agent.yaml"
        path.write_text(config_text(nodes, f"opc.tcp://127.0.0.1:{free_port()}/none", Path(name)))
        row["load_s"] = load_seconds(path)
        row["held_b"] = held_bytes(path) / nodes
        row["check_s"] = check_seconds(path, starts)
    row["ready_s"], row["rss_mb"] = agent_runs(
        nodes, f"opc.tcp://127.0.0.1:{free_port()}/x", starts
    )
    if with_server:
        with server(nodes) as (url, took):
            row["server_s"] = took
            row["ready_up_s"], row["rss_up_mb"] = agent_runs(nodes, url, 1)
    print(row, file=sys.stderr, flush=True)
    return row


def report(rows: list[dict[str, float]]) -> str:
    import edge_agent

    lines = [
        f"Tree: {Path(edge_agent.__file__).parent}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load average {os.getloadavg()[0]:.2f}.",
        "",
        "| nodes | load_config s | check-config s | config B per node (held) | READY s "
        "| RSS MB, server unreachable | RSS MB, polling a server |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        up = f"{r['rss_up_mb']:.1f} (READY {r['ready_up_s']:.2f} s)" if "rss_up_mb" in r else "-"
        lines.append(
            f"| {r['nodes']:,.0f} | {r['load_s']:.3f} | {r['check_s']:.2f} | {r['held_b']:,.0f} "
            f"| {r['ready_s']:.2f} | {r['rss_mb']:.1f} | {up} |"
        )
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        extra = last["nodes"] - first["nodes"]
        for key, what in (("rss_mb", "server unreachable"), ("rss_up_mb", "polling")):
            if key in first and key in last:
                per = (last[key] - first[key]) * 1024 / extra
                lines.append(f"\nPer additional node ({what}): {per:.2f} KB.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, nargs="+", default=[2000, 10_000])
    parser.add_argument("--starts", type=int, default=3, help="starts per READY median")
    parser.add_argument("--server", action="store_true", help="also poll a real server")
    parser.add_argument("--serve", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(*args.serve))
        return
    compile_bytecode()
    rows = [measure(n, args.starts, args.server) for n in args.nodes]
    print(report(rows))


if __name__ == "__main__":
    main()
