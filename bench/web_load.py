"""What the site view costs: the agent at 2,000 tags / 1 s with nobody, one and ten browsers.

``python -m bench.web_load [--seconds 20]`` starts the pymodbus server of
:mod:`bench.agent_e2e` in its own process, then runs ``edge-agent run`` with
2,000 float32 tags polled every second (block reads, the twin, the detector
loop, a JSONL sink: :func:`bench.agent_e2e.agent_config`) in five cases, a
fresh agent each:

* the minimal loop of :mod:`bench.agent_e2e` (raw pymodbus + sqlite3), the base of the ratios;
* the agent with the site view off (no ``web:`` section);
* the site view on, nobody looking;
* one headless Chromium tab on the live tag table (``#/tags``, polling every second);
* ten tabs on the live tag table (one Chromium, ten browser contexts).

CPU is the agent process's own (utime+stime, least-squares slope of readings
every 0.2 s, as in :mod:`bench.agent_e2e`); Chromium's CPU is not counted. RSS
is VmRSS at the end of the window and the peak VmHWM. Requests are what the
tabs fetched from the agent during the window. Chromium is Debian's
``/usr/bin/chromium`` driven by Playwright (no browser download).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.agent_e2e import (
    MAX_TAGS,
    ROOT,
    Case,
    agent_command,
    agent_config,
    cpu_rates,
    notify_socket,
    register_values,
    run_minimal,
    stop_agent,
    vm_hwm,
    wait_ready,
)
from bench.modbus_poll import free_port, serve

CASE = Case(2000, 1.0)
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CASES: list[tuple[str, bool, int]] = [
    ("site view off", False, 0),
    ("site view on, nobody looking", True, 0),
    ("one browser on the live table", True, 1),
    ("ten browsers on the live table", True, 10),
]


def vm_rss(pid: int) -> float:
    """Current resident set size (VmRSS) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@contextmanager
def tabs(url: str, count: int, seen: list[int]) -> Iterator[list[Any]]:
    """``count`` headless Chromium tabs on ``url``; ``seen[0]`` counts their requests.

    Playwright's sync API delivers events only inside its own calls: :func:`pump`
    the pages to bring the count up to date.
    """
    if not count:
        yield []
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            pages = []
            for _ in range(count):
                page = browser.new_context().new_page()
                page.on("request", lambda _: seen.__setitem__(0, seen[0] + 1))
                page.goto(url)
                page.wait_for_selector("#tags tbody tr", timeout=30_000)
                pages.append(page)
            yield pages
        finally:
            browser.close()


def pump(pages: list[Any], seen: list[int]) -> int:
    """Let Playwright deliver the pages' pending events; the request count so far."""
    for page in pages:
        page.evaluate("1")
    return seen[0]


def start(config: dict[str, Any], folder: Path, sock: Any) -> subprocess.Popen[bytes]:
    """Write the config and start ``edge-agent run``; returns once it is READY."""
    path = folder / "agent.yaml"
    path.write_text(json.dumps(config, indent=1))
    env = {**os.environ, "NOTIFY_SOCKET": str(folder / "notify.sock")}
    with (folder / "agent.log").open("wb") as log:
        proc = subprocess.Popen(
            [*agent_command(), "run", "--config", str(path)], env=env, stderr=log, cwd=ROOT
        )
    try:
        wait_ready(sock, proc, 60)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def run_case(web: bool, count: int, port: int, seconds: float, folder: Path) -> dict[str, Any]:
    """One agent, ``count`` tabs, one timed window."""
    web_port = free_port()
    config = agent_config(CASE, port, web_port, folder)
    if not web:
        del config["web"]
    seen = [0]
    # Threads here would be Playwright's: the sync API must be used without a running loop.
    with notify_socket(folder) as sock:
        proc = start(config, folder, sock)
        try:
            time.sleep(4.0)  # connect, first flushes
            with tabs(f"http://127.0.0.1:{web_port}/#/tags", count, seen) as pages:
                time.sleep(3.0)  # every tab loaded and polling
                first = pump(pages, seen)
                rates = cpu_rates(proc.pid, seconds)
                requests = pump(pages, seen) - first
                rss, peak = vm_rss(proc.pid), vm_hwm(proc.pid)
        finally:
            stop_agent(proc, folder)
    return {"cpu": rates[0], "loop_cpu": rates[1], "rss": rss, "peak": peak, "requests": requests}


def table(minimal: dict[str, Any], rows: list[tuple[str, dict[str, Any]]], seconds: float) -> str:
    """The Markdown table and the reading of it."""
    base = minimal["cpu"] / minimal["wall"]
    off = rows[0][1]["cpu"]
    lines = [
        "| case | CPU % of a core | event loop % | added vs off (% core) | x minimal loop | "
        "RSS MB | peak RSS MB | requests/s |",
        "|---|---|---|---|---|---|---|---|",
        f"| minimal loop (pymodbus + sqlite3) | {100 * base:.2f} | - | - | 1.00 | "
        f"{minimal['rss_mb']:.0f} | - | - |",
    ]
    for label, r in rows:
        lines.append(
            f"| {label} | {100 * r['cpu']:.2f} | {100 * r['loop_cpu']:.2f} | "
            f"{100 * (r['cpu'] - off):+.2f} | {r['cpu'] / base:.2f} | {r['rss']:.0f} | "
            f"{r['peak']:.0f} | {r['requests'] / seconds:.1f} |"
        )
    idle, one, ten = (100 * (r["cpu"] - off) for _, r in rows[1:])
    lines += [
        "",
        f"Added by the site view, in % of one core: {idle:+.2f} with nobody looking (goal: "
        f"nothing), {one:+.2f} with one browser on the live table (goal: at most 3), "
        f"{ten:+.2f} with ten. The ten tabs share one built and gzipped `/api/v1/signals` "
        "answer per half second (about 8 ms of CPU for 2,000 signals, most of it "
        "`json.dumps`). Between two runs on this shared machine the same case differed by "
        "up to 0.16 % of a core.",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run every case and write the ``web_load`` section of BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0, help="timed window per case")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = parser.parse_args()
    port, counter, ready = free_port(), multiprocessing.Value("q", 0), multiprocessing.Event()
    server = multiprocessing.Process(
        target=serve, args=(port, register_values(MAX_TAGS), counter, ready), daemon=True
    )
    server.start()
    ready.wait(30)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="web-") as folder:
            minimal = run_minimal(CASE, port, args.seconds, counter, Path(folder))
        for label, web, count in CASES:
            with tempfile.TemporaryDirectory(prefix="web-") as folder:
                rows.append((label, run_case(web, count, port, args.seconds, Path(folder))))
            print(f"{label}: {rows[-1][1]}", file=sys.stderr)
    finally:
        server.terminate()
        server.join()
    body = table(minimal, rows, args.seconds)
    print(body)
    if not args.no_write:
        from bench.report import write_section

        write_section("web_load", "Site view: agent CPU and RSS with 0, 1 and 10 browsers", body)


if __name__ == "__main__":
    main()
