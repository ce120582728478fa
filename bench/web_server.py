"""Which HTTP server for the site view: RSS and CPU of each candidate inside one asyncio loop.

``python -m bench.web_server --framework-python PY [--requests 3000]`` runs each
candidate in a process of its own, serving one route with a 100 KB JSON body
(about the size of ``/api/v1/signals`` at 600 tags) from the process's own
event loop, the way the agent would:

* **loop**: a bare asyncio loop with nothing served (the minimal loop; the ratio's base);
* **hand**: :class:`edge_agent.web.http.HttpServer` (stdlib only);
* **aiohttp**: ``aiohttp.web`` through ``AppRunner``/``TCPSite`` on the running loop;
* **starlette**: a Starlette app under ``uvicorn.Server.serve()`` awaited on the running loop.

The frameworks are not project dependencies: give ``--framework-python`` a venv
with ``aiohttp``, ``starlette`` and ``uvicorn`` installed. Measured per
candidate: RSS after import and start (VmRSS), CPU per request over
``--requests`` keep-alive GETs from a client process (utime+stime of the server
process), and CPU while idle for 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BODY = json.dumps(
    [{"name": f"pump.t{i}", "value": i * 0.5, "quality": "good"} for i in range(1800)]
)

SERVER = r"""
import asyncio, sys, os
sys.path.insert(0, sys.argv[3])
kind, port = sys.argv[1], int(sys.argv[2])
body = os.environ["BENCH_BODY"].encode()

async def hand():
    from edge_agent.web.http import HttpServer, Response
    async def handler(request):
        return Response(200, body)
    await HttpServer(handler, {}).start("127.0.0.1", port)

async def aio():
    from aiohttp import web
    async def handler(request):
        return web.Response(body=body, content_type="application/json")
    app = web.Application()
    app.router.add_get("/x", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()

async def star():
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route
    async def handler(request):
        return Response(body, media_type="application/json")
    app = Starlette(routes=[Route("/x", handler)])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None
    asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)

async def main():
    if kind != "loop":
        await {"hand": hand, "aiohttp": aio, "starlette": star}[kind]()
    print("ready", flush=True)
    await asyncio.Future()

asyncio.run(main())
"""


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """VmRSS of a process in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def hammer(port: int, count: int) -> None:
    """``count`` keep-alive GETs on one connection, each read to its end."""
    request = f"GET /x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        stream = sock.makefile("rb")
        for _ in range(count):
            sock.sendall(request)
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            stream.read(length)


def measure(kind: str, python: str, requests: int) -> dict[str, float]:
    """Start one candidate, measure it, stop it."""
    port = free_port()
    env = {**os.environ, "BENCH_BODY": BODY}
    proc = subprocess.Popen(
        [python, "-c", SERVER, kind, str(port), str(ROOT)], stdout=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(1.0)
        rss = rss_mb(proc.pid)
        before = cpu_seconds(proc.pid)
        time.sleep(10.0)
        idle = cpu_seconds(proc.pid) - before
        per_request = 0.0
        if kind != "loop":
            before = cpu_seconds(proc.pid)
            hammer(port, requests)
            per_request = (cpu_seconds(proc.pid) - before) / requests
        return {"rss_mb": rss, "idle_cpu_s": idle, "cpu_us_per_request": per_request * 1e6}
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    """Measure every candidate and print a Markdown table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--framework-python", required=True, help="a python with the frameworks")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = parser.parse_args()
    results = {
        kind: measure(kind, sys.executable if kind in ("loop", "hand") else args.framework_python,
                      args.requests)
        for kind in ("loop", "hand", "aiohttp", "starlette")
    }  # fmt: skip
    body = report(results, len(BODY), versions(args.framework_python))
    print(body)
    if not args.no_write:
        from bench.report import write_section

        write_section("web_server", "Site view: which HTTP server inside the agent's loop", body)


def versions(python: str) -> str:
    """The frameworks' versions in ``python``."""
    code = (
        "import importlib.metadata as m; "
        "print(', '.join(f'{p} {m.version(p)}' for p in ('aiohttp', 'starlette', 'uvicorn')))"
    )
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


def report(results: dict[str, dict[str, float]], body_bytes: int, found: str) -> str:
    """The table, and the choice it supports."""
    base = results["loop"]["rss_mb"]
    hand = results["hand"]["cpu_us_per_request"]

    def added(kind: str) -> str:
        return f"{results[kind]['rss_mb'] - base:.1f}"

    def per(kind: str) -> str:
        return f"{results[kind]['cpu_us_per_request'] / hand:.2f}"

    lines = [
        f"One GET route answering {body_bytes:,} bytes of JSON, keep-alive, from a client "
        "process; each server in its own process on its own asyncio loop.",
        "",
        "| server | RSS MB | RSS added MB | CPU us/request | vs hand | idle CPU s/10 s |",
        "|---|---|---|---|---|---|",
    ]
    for kind, r in results.items():
        ratio = f"{r['cpu_us_per_request'] / hand:.2f}x" if kind != "loop" else "-"
        lines.append(
            f"| {kind} | {r['rss_mb']:.1f} | {r['rss_mb'] - base:.1f} | "
            f"{r['cpu_us_per_request']:.0f} | {ratio} | {r['idle_cpu_s']:.2f} |"
        )
    lines += [
        "",
        "Chosen: **hand** (`edge_agent/web/http.py`, stdlib `asyncio.start_server`): "
        f"{added('hand')} MB added against {added('aiohttp')} MB for aiohttp and "
        f"{added('starlette')} MB for Starlette on uvicorn, and "
        f"{per('aiohttp')} / {per('starlette')} times its CPU per request for those two. "
        "It needs no dependency, and the site view uses none of what the frameworks add "
        "(routing DSL, middleware, forms, websockets). The frameworks were installed with "
        f"`pip install aiohttp starlette uvicorn` in a scratch venv: {found}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
