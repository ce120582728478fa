"""Whole agent vs minimal loop: ``edge-agent run`` against a hand-written poll loop.

``python -m bench.agent_e2e [--seconds 15]`` starts the pymodbus TCP server of
:mod:`bench.modbus_poll` in its own process (its CPU is not counted) holding
contiguous float32 registers, then runs each case twice, one process at a time:

* **agent**: ``edge-agent run --config ...`` as a subprocess: one Modbus source
  ``pump1`` (tags ``pump1.motor_current`` ... ``pump1.flow`` as in the simulated
  plant, then ``pump1.t5`` ...), the recorder writing the SQLite twin, the
  detector loop, the outbox, a JSONL sink and the Prometheus endpoint. Startup
  is timed to ``READY=1`` on a ``NOTIFY_SOCKET`` bound here, as systemd would.
  The timed window starts a few seconds after READY (connect, first flushes and
  the model's first window excluded) and is bounded by two scrapes of
  ``/metrics``; CPU is utime+stime of ``/proc/<pid>/stat`` (and of the main
  thread's ``/proc/<pid>/task/<pid>/stat``) over that window, peak RSS VmHWM.
* **minimal**: the loop an integrator would write: raw pymodbus block reads of
  the same registers (62 float32 per 124-register read), ``struct`` decode,
  ``executemany`` + commit into a plain sqlite3 table every tick, on the same
  drift-free tick loop as :mod:`bench.modbus_poll` (imported from there).

Samples/s is what reached the database: rows of the polled signals whose
timestamp falls in the window, counted after the run, per tick of a reference
signal in that window (so where the 1 s ticks fall does not matter). /proc
counts CPU in 10 ms ticks, too coarse for the difference of two readings over
a 1 s case: the agent's CPU is the least-squares slope of readings every 0.2 s;
the minimal loop's is its own process time over the window. The twin uses
``sync: normal`` like the minimal loop (the agent's default ``full``
adds one fsync per flush, I/O rather than CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import functools
import json
import multiprocessing
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.modbus_poll import INSERT, free_port, open_db, serve, tick_loop

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "edge_agent" / "sim" / "demo_pump.onnx"
SOURCE = "pump1"
PUMP = ("motor_current", "bearing_temp", "vibration_rms", "discharge_pressure", "flow")
PER_READ = 62  # float32 per request: 124 of the 125 registers Modbus allows
MAX_TAGS = 10_000
RULES = 10


@dataclass(frozen=True)
class Case:
    """One measured configuration."""

    tags: int
    interval: float
    model: bool = False
    devices: int = 1
    """Sources ``pump1``, ``pump2``...: one connection each, ``tags / devices`` tags each."""
    assets: int = 0
    """Assets with the demo model, one per device from ``pump1`` (``model`` adds rules too)."""
    pin: str = ""
    """``taskset -c`` CPU list for the agent and the minimal loop ("" = not pinned)."""
    ring: int = 0
    """For an accelerated soak: the twin's ``max_samples`` (0: the defaults), with rollups
    kept 1 minute, so both rings fill within minutes instead of days."""

    @property
    def label(self) -> str:
        extra = " + model + 10 rules" if self.model else ""
        if self.devices > 1:
            extra += f", {self.devices} devices"
        if self.assets:
            extra += f", {self.assets} asset{'s' if self.assets > 1 else ''} with a model"
        if self.pin:
            extra += f", pinned to CPU {self.pin}"
        return f"{self.tags} @ {self.interval:g} s{extra}"

    @property
    def per_device(self) -> int:
        return self.tags // self.devices

    def taskset(self) -> list[str]:
        return ["taskset", "-c", self.pin] if self.pin else []


CASES = [Case(500, 1.0), Case(2000, 1.0), Case(500, 0.1), Case(2000, 0.1), Case(500, 1.0, True)]


def tag_names(tags: int) -> list[str]:
    """The first five are the demo model's inputs, the rest ``t5``, ``t6``, ..."""
    return [*PUMP, *(f"t{i}" for i in range(len(PUMP), tags))][:tags]


def register_values(tags: int) -> list[int]:
    """float32 registers: the model card's normal means for the pump signals, then ramps."""
    card = json.loads(MODEL.with_suffix(".card.json").read_text())
    floats = [*card["mean"], *(20.0 + i / 7 for i in range(len(PUMP), tags))]
    return list(struct.unpack(f">{2 * tags}H", struct.pack(f">{tags}f", *floats)))


# ---------------------------------------------------------- the minimal loop --


async def minimal_worker(
    port: int, tags: int, interval: float, seconds: float, db: sqlite3.Connection, devices: int = 1
) -> dict[str, Any]:
    """Block reads (one connection per device, all at once), struct decode, one commit per tick."""
    from pymodbus.client import AsyncModbusTcpClient

    per = tags // devices
    clients = [
        AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0) for _ in range(devices)
    ]
    for client in clients:
        await client.connect()
    names = [[f"pump{k + 1}.{n}" for n in tag_names(per)] for k in range(devices)]
    plans = [
        (client, [(i * 2, names[k][i : i + PER_READ]) for i in range(0, per, PER_READ)])
        for k, client in enumerate(clients)
    ]
    first_tick: list[float] = []
    connected_at = time.time()  # imports done, DB open, connected: the agent's READY's analog

    async def device(client: Any, blocks: list[tuple[int, list[str]]]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for start, members in blocks:
            reply = await client.read_holding_registers(start, count=2 * len(members), device_id=1)
            ts = time.time()
            raw = struct.pack(f">{2 * len(members)}H", *reply.registers)
            values = struct.unpack(f">{len(members)}f", raw)
            rows += [(name, ts, value, "good") for name, value in zip(members, values, strict=True)]
        return rows

    async def tick() -> int:
        if len(plans) == 1:
            rows = await device(*plans[0])
        else:
            rows = [r for part in await asyncio.gather(*(device(*p) for p in plans)) for r in part]
        db.executemany(INSERT, rows)
        db.commit()
        if not first_tick:
            first_tick.append(time.time())
        return len(rows)

    try:
        result = await tick_loop(interval, seconds, tick)
    finally:
        for client in clients:
            client.close()
    return {
        **result,
        "connected_at": connected_at,
        "first_tick_at": first_tick[0],
        "end_at": time.time(),
    }


def worker(
    port: int, tags: int, interval: float, seconds: float, db_path: Path, devices: int = 1
) -> None:
    """Run the minimal loop once and print its measurements as one JSON line."""
    db = open_db(db_path)
    result = asyncio.run(minimal_worker(port, tags, interval, seconds, db, devices))
    db.close()
    result["rss_mb"] = vm_hwm(os.getpid())
    result["rss_now_mb"] = vm_rss(os.getpid())
    print(json.dumps(result))


def run_minimal(
    case: Case, port: int, seconds: float, counter: Any, folder: Path
) -> dict[str, Any]:
    """The minimal loop in a fresh process; CPU as measured by tick_loop (process time)."""
    db_path = folder / "minimal.db"
    before, spawned = counter.value, time.time()
    out = subprocess.run(
        [*case.taskset(), sys.executable, "-m", "bench.agent_e2e", "--worker",
         "--port", str(port), "--tags", str(case.tags), "--interval", str(case.interval),
         "--devices", str(case.devices), "--seconds", str(seconds), "--db", str(db_path)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    r: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    window = (r["end_at"] - r["wall"], r["end_at"])
    source = "substr(signal, 1, instr(signal, '.') - 1)"
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        rows = db.execute(
            f"SELECT {source}, count(*) FROM samples WHERE ts >= ? AND ts < ? GROUP BY 1", window
        )
        stamps = db.execute(
            f"SELECT {source}, ts FROM samples WHERE signal LIKE ? AND ts >= ? AND ts < ?"
            " ORDER BY ts",
            (f"%.{PUMP[0]}", *window),
        )
        rate = per_source_rate(rows.fetchall(), stamps.fetchall(), r["wall"])
    return {
        "startup": r["first_tick_at"] - spawned,
        "connected": r["connected_at"] - spawned,
        "cpu": r["cpu"],
        "rate": rate,
        "wall": r["wall"],
        "skipped": r["skipped"],
        "requests_per_tick": (counter.value - before) / (r["ticks"] + 1),  # + warm-up tick
        "rss_mb": r["rss_mb"],
        "rss_now_mb": r["rss_now_mb"],
    }


# ------------------------------------------------------------------ the agent --


def agent_config(case: Case, port: int, metrics_port: int, folder: Path) -> dict[str, Any]:
    """The config of ``edge-agent run`` for one case (written by :func:`config_text`)."""
    registers = [
        {"name": name, "address": 2 * i, "data_type": "float32"}
        for i, name in enumerate(tag_names(case.per_device))
    ]
    detect: dict[str, Any] = {"interval": "1s"}
    assets = max(case.assets, int(case.model))
    if assets:
        detect["assets"] = [
            {"name": f"pump{k}", "model": str(MODEL), "signals": [f"pump{k}.{n}" for n in PUMP]}
            for k in range(1, assets + 1)
        ]
        # Nine never hold; one (motor current 23.8 A > 20 A) raises once and stays raised,
        # so the outbox and the JSONL sink carry an alert.
        detect["rules"] = [
            {"name": f"limit-{i}", "type": "threshold", "signal": f"{SOURCE}.t{len(PUMP) + i}",
             "above": 1e6, "hysteresis": 1.0, "for": "2s"}
            for i in range(RULES - 1)
        ] + [{"name": "current-high", "type": "threshold",
              "signal": f"{SOURCE}.motor_current", "above": 20.0, "for": "2s"}]  # fmt: skip
    return {
        "agent": {"id": "bench", "data_dir": str(folder / "data"), "log_level": "warning"},
        "sources": [
            {
                "type": "modbus",
                "name": f"pump{k}",
                "url": f"tcp://127.0.0.1:{port}",
                "interval": f"{round(case.interval * 1000)}ms",
                "registers": registers,
            }
            for k in range(1, case.devices + 1)
        ],
        "twin": {"sync": "normal", **_soak_twin(case)},
        "detect": detect,
        "sinks": [{"type": "jsonl", "name": "local", "path": str(folder / "alerts.jsonl")}],
        "web": {"listen": f"127.0.0.1:{metrics_port}"},  # /metrics is served by the site view
    }


def config_text(config: dict[str, Any]) -> str:
    """``config`` as an integrator writes it: block-style YAML, keys in their order.

    Not JSON (a YAML subset that reads about 10 % faster: every name quoted, so no
    implicit type to try; BENCHMARKS.md, "Time to READY, third pass").
    """
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=False)


def _soak_twin(case: Case) -> dict[str, Any]:
    return {"max_samples": case.ring, "rollup_max_age": "1m"} if case.ring else {}


@contextmanager
def modbus_server() -> Iterator[tuple[int, Any]]:
    """A pymodbus server of MAX_TAGS registers in a child process: its port and request counter."""
    port, counter, ready = free_port(), multiprocessing.Value("q", 0), multiprocessing.Event()
    server = multiprocessing.Process(
        target=serve, args=(port, register_values(MAX_TAGS), counter, ready), daemon=True
    )
    server.start()
    ready.wait(30)
    try:
        yield port, counter
    finally:
        server.terminate()
        server.join()


@contextmanager
def notify_socket(folder: Path) -> Iterator[socket.socket]:
    """A unix datagram socket standing in for systemd's notify socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(str(folder / "notify.sock"))
        yield sock
    finally:
        sock.close()


def wait_ready(sock: socket.socket, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited with {proc.returncode} before READY")
        try:
            if b"READY=1" in sock.recv(4096):
                return
        except TimeoutError:
            continue
    raise RuntimeError("agent not READY in time")


@functools.cache
def compile_bytecode() -> None:
    """Write the agent's bytecode files, as installing a wheel does.

    An editable install run with ``PYTHONDONTWRITEBYTECODE=1`` (or from a read-only
    tree) has none, and then every start compiles each of the agent's modules from
    source again: about 0.08 s of CPU before READY that no installed agent pays
    (BENCHMARKS.md, "Time to READY, third pass"). Only stale files are rewritten.
    """
    compileall.compile_dir(ROOT / "edge_agent", quiet=1)


def agent_command() -> list[str]:
    script = Path(sys.executable).parent / "edge-agent"
    return [str(script)] if script.exists() else [sys.executable, "-m", "edge_agent"]


def cpu_seconds(pid: int, task: int | None = None) -> float:
    """utime + stime of a process (all its threads, dead ones too) or of one thread."""
    path = f"/proc/{pid}/task/{task}/stat" if task else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_rss(pid: int) -> float:
    """Resident set size now (VmRSS) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def vm_hwm(pid: int) -> float:
    """Peak resident set size (VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def scrape(url: str) -> dict[str, float]:
    """Sum each metric of a Prometheus text page over its labels."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            name = key.split("{", 1)[0]
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals


@dataclass
class Probe:
    """What is read at each end of the agent's timed window."""

    at: float
    metrics: dict[str, float]
    requests: int

    @classmethod
    def take(cls, url: str, counter: Any) -> Probe:
        return cls(time.time(), scrape(url), counter.value)


def cpu_rates(pid: int, seconds: float, step: float = 0.2) -> tuple[float, float]:
    """CPU seconds per second of the process and of its main (event loop) thread.

    /proc counts in 10 ms ticks, as much as the whole CPU of a 1 s case over a
    few seconds: the least-squares slope of ~75 readings is far finer than the
    difference of two.
    """
    times: list[float] = []
    total: list[float] = []
    loop: list[float] = []
    end = time.monotonic() + seconds
    while (now := time.monotonic()) < end:
        times.append(now)
        total.append(cpu_seconds(pid))
        loop.append(cpu_seconds(pid, pid))
        time.sleep(step)
    return (
        statistics.linear_regression(times, total).slope,
        statistics.linear_regression(times, loop).slope,
    )


def twin_rate(twin: Path, start: float, end: float) -> float:
    """Samples/s of the polled signals recorded in the twin in [start, end)."""
    from edge_agent.twin.rollups import SIGNAL_MASK

    join = "FROM samples s JOIN signals g ON g.id = (s.id & ?) WHERE s.ts >= ? AND s.ts < ? AND"
    window = (SIGNAL_MASK, start, end)
    with sqlite3.connect(f"file:{twin}?mode=ro", uri=True) as db:
        rows = db.execute(
            f"SELECT g.source, count(*) {join} g.source LIKE 'pump%' GROUP BY 1", window
        )
        stamps = db.execute(
            f"SELECT g.source, s.ts {join} g.source LIKE 'pump%' AND g.name = g.source || ?"
            " ORDER BY s.ts",
            (*window, f".{PUMP[0]}"),
        )
        return per_source_rate(rows.fetchall(), stamps.fetchall(), end - start)


def per_source_rate(
    rows: list[tuple[str, int]], stamps: list[tuple[str, float]], wall: float
) -> float:
    """Samples/s summed over the sources, each counted against its own reference signal.

    The sources tick on their own schedules: with 50 devices one tick's replies spread
    over tens of milliseconds, and a window edge that falls inside the spread holds one
    tick more of some sources than of others. Counting every source's rows against
    pump1's ticks alone then read 1,942 and 1,824 samples/s for 2,000 polled with 50
    devices (each device's own count: 2,000; no tick skipped, no gap in any device).

    Args:
        rows: ``(source, samples in the window)``.
        stamps: ``(source, ts)`` of each source's ``<source>.motor_current``, in order.
        wall: the window's length (used only for a source with fewer than 2 stamps).
    """
    ticks: dict[str, list[float]] = {}
    for source, ts in stamps:
        ticks.setdefault(source, []).append(ts)
    return sum(tick_free_rate(count, ticks.get(source, []), wall) for source, count in rows)


def tick_free_rate(rows: int, stamps: list[float], wall: float) -> float:
    """Samples/s independent of where the ticks fall in the window.

    ``rows / wall`` is off by up to one tick of samples (7 % at 1 s over 15 s).
    The reference signal's n timestamps span n - 1 ticks: rows per tick times ticks per second.
    """
    if len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return rows / wall
    return rows / len(stamps) * (len(stamps) - 1) / (stamps[-1] - stamps[0])


def start_agent(
    case: Case,
    port: int,
    folder: Path,
    sock: socket.socket,
    extra_env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str, float]:
    """Write the config, start the agent, wait for READY; (process, metrics URL, startup s)."""
    compile_bytecode()
    metrics_port = free_port()
    config = folder / "agent.yaml"
    config.write_text(config_text(agent_config(case, port, metrics_port, folder)))
    env = {**os.environ, **(extra_env or {}), "NOTIFY_SOCKET": str(folder / "notify.sock")}
    spawned = time.monotonic()
    with (folder / "agent.log").open("wb") as log:
        proc = subprocess.Popen(
            [*case.taskset(), *agent_command(), "run", "--config", str(config)],
            env=env,
            stderr=log,
            cwd=ROOT,
        )
    try:
        wait_ready(sock, proc, 60)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, f"http://127.0.0.1:{metrics_port}/metrics", time.monotonic() - spawned


def stop_agent(proc: subprocess.Popen[bytes], folder: Path) -> tuple[float, str]:
    """SIGTERM as systemd would; (seconds to exit, what it took).

    After 5 s a second SIGTERM, after 5 more SIGKILL: on Python 3.11
    ``asyncio.wait_for`` (inside pymodbus) can swallow the cancellation of a
    read that completes at the same moment (python/cpython#86296); the poll
    task then runs on and the agent never exits by itself.
    """
    start = time.monotonic()
    how = "SIGKILL"
    for attempt in ("SIGTERM", "2nd SIGTERM"):
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            continue
        how = attempt
        break
    else:
        proc.kill()
        proc.wait()
    if proc.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
        log = (folder / "agent.log").read_text()[-2000:]
        raise RuntimeError(f"agent exited with {proc.returncode}:\n{log}")
    return time.monotonic() - start, how


def run_agent(case: Case, port: int, seconds: float, counter: Any, folder: Path) -> dict[str, Any]:
    """The whole agent; measured between two scrapes after READY and a warm-up."""
    with notify_socket(folder) as sock:
        proc, url, startup = start_agent(case, port, folder, sock)
        try:
            warm = 6.0 if case.model or case.assets else 0.0
            time.sleep(3.0 + warm)  # first flushes, model window
            before = Probe.take(url, counter)
            rates = cpu_rates(proc.pid, seconds)
            after = Probe.take(url, counter)
            rss, rss_now = vm_hwm(proc.pid), vm_rss(proc.pid)
        finally:
            stop = stop_agent(proc, folder)
    row = measured(case, folder, (startup, rss), rates, before, after)
    return {**row, "stop": stop, "rss_now_mb": rss_now}


def measured(
    case: Case,
    folder: Path,
    start: tuple[float, float],
    rates: tuple[float, float],
    before: Probe,
    after: Probe,
) -> dict[str, Any]:
    """The agent's row of the table; ``start`` is (startup s, peak RSS MB)."""

    def delta(name: str) -> float:
        return after.metrics.get(name, 0.0) - before.metrics.get(name, 0.0)

    reads = delta("edge_agent_source_reads_total")
    alerts = folder / "alerts.jsonl"
    wall = after.at - before.at
    return {
        "startup": start[0],
        "cpu": rates[0] * wall,
        "loop_cpu": rates[1] * wall,
        "rate": twin_rate(folder / "data" / "twin.db", before.at, after.at),
        "written": delta("edge_agent_twin_samples_written_total"),
        "wall": wall,
        "skipped": delta("edge_agent_source_skipped_ticks_total"),
        "requests_per_tick": (after.requests - before.requests) / reads if reads else 0.0,
        "rss_mb": start[1],
        "alerts": len(alerts.read_text().splitlines()) if alerts.exists() else 0,
    }


# ---------------------------------------------------------------- the profile --


def py_spy() -> str | None:
    found = shutil.which("py-spy") or Path(sys.executable).parent / "py-spy"
    return str(found) if Path(found).exists() else None


def profile_agent(case: Case, port: int, seconds: float, folder: Path) -> str:
    """An extra, unmeasured agent run sampled by py-spy (if installed): where its CPU goes."""
    spy = py_spy()
    if spy is None:
        return "py-spy is not installed: no profile (`pip install py-spy` to get one)."
    out = folder / "profile.txt"
    with notify_socket(folder) as sock:
        proc, _, _ = start_agent(case, port, folder, sock)
        try:
            time.sleep(3.0)
            subprocess.run(
                [spy, "record", "--pid", str(proc.pid), "--duration", str(round(seconds)),
                 "--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"],
                capture_output=True, check=True,
            )  # fmt: skip
        finally:
            stop_agent(proc, folder)
    return summarise(out.read_text(), case)


def frame_name(frame: str) -> str:
    """``read (edge_agent/sources/modbus.py:88)`` -> ``edge_agent/sources/modbus.py:read``."""
    function, _, where = frame.rpartition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "python3.11/"):
        path = path.split(marker, 1)[-1]
    return f"{path}:{function}"


def wiring(name: str) -> bool:
    """Frames every stack of a thread goes through (the CLI, run_agent): no information."""
    return name.startswith(("edge_agent/cli.py", "edge_agent/__main__.py", "edge_agent/agent.py"))


def summarise(raw: str, case: Case, top: int = 12) -> str:
    """Inclusive share of the busy samples per edge_agent function, and the hottest leaves."""
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [frame_name(f) for f in stack.split(";")]
        total += int(count)
        leaves[frames[-1]] += int(count)
        for name in {f for f in frames if f.startswith("edge_agent/") and not wiring(f)}:
            inclusive[name] += int(count)
    if not total:
        return "py-spy recorded no busy samples."
    lines = [
        f"py-spy, {case.label}, separate unmeasured run: share of the busy samples (all threads).",
        "",
        "| edge_agent function (inclusive) | share | | hottest leaf frames (self) | share |",
        "|---|---:|---|---|---:|",
    ]
    for (name, n), (leaf, m) in zip(
        inclusive.most_common(top), leaves.most_common(top), strict=False
    ):
        lines.append(f"| `{name}` | {n / total:.0%} | | `{leaf}` | {m / total:.0%} |")
    lines.append(
        "\n`_SelectorSocketTransport.write` is the send of each request; on loopback the kernel"
        " delivers it to the server inside that call. The minimal loop pays it too."
    )
    return "\n".join(lines)


# ------------------------------------------------------------------ the report --

HEADER = (
    "| case | loop | startup s | stop s | samples/s recorded | twin writes/s (metric)"
    " | CPU s per 1000 samples | event-loop thread | requests/tick | peak RSS MB | skipped ticks |"
)


def stop_text(r: dict[str, Any]) -> str:
    if "stop" not in r:
        return "-"
    seconds, how = r["stop"]
    return f"{seconds:.2f}" + ("" if how == "SIGTERM" else f" ({how})")


def table(rows: list[tuple[Case, dict[str, Any], dict[str, Any]]]) -> str:
    lines = [HEADER, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    # twin writes/s: the recorder's counter, which moves once per 1 s flush (a cross-check)
    for case, agent, minimal in rows:
        for name, r in (("agent", agent), ("minimal", minimal)):
            share = f"{r['loop_cpu'] / r['cpu']:.0%}" if "loop_cpu" in r and r["cpu"] else "-"
            written = f"{r['written'] / r['wall']:,.0f}" if "written" in r else "-"
            lines.append(
                f"| {case.label} | {name} | {r['startup']:.2f} | {stop_text(r)} | "
                f"{r['rate']:,.0f} | "
                f"{written} | "
                f"{per_1000(r) / 1000:.4f} | {share} | "
                f"{r['requests_per_tick']:.1f} | {r['rss_mb']:.1f} | {r['skipped']:.0f} |"
            )
    return "\n".join(lines)


def ratios(rows: list[tuple[Case, dict[str, Any], dict[str, Any]]]) -> str:
    lines = [
        "| case | CPU per sample | samples/s | peak RSS | startup |",
        "|---|---:|---:|---:|---:|",
    ]
    for case, a, m in rows:
        cpu = per_1000(a) / per_1000(m)
        rate = a["rate"] / m["rate"]
        lines.append(
            f"| {case.label} | {cpu:.2f}x | {rate:.2f}x | {a['rss_mb'] / m['rss_mb']:.2f}x | "
            f"{a['startup'] / m['startup']:.2f}x |"
        )
    return "\n".join(lines)


def per_1000(r: dict[str, Any], key: str = "cpu") -> float:
    """Milliseconds of CPU per 1,000 recorded samples."""
    return float(r[key] / r["wall"] / r["rate"] * 1e6)


def split(rows: list[tuple[Case, dict[str, Any], dict[str, Any]]]) -> str:
    """Where the agent's CPU goes, by thread, against the minimal loop's whole cost."""
    lines = [
        "| case | minimal, all | agent, event loop | agent, other threads | agent extra |",
        "|---|---:|---:|---:|---:|",
    ]
    for case, a, m in rows:
        loop, total = per_1000(a, "loop_cpu"), per_1000(a)
        lines.append(
            f"| {case.label} | {per_1000(m):.1f} | {loop:.1f} | {total - loop:.1f} | "
            f"{total - per_1000(m):+.1f} |"
        )
    hung = sum(a["stop"][1] != "SIGTERM" for _, a, _ in rows)
    note = (
        f"\n\nSIGTERM did not stop the agent within 5 s in {hung} of {len(rows)} runs (see "
        "*stop s*: what stopped it). The poll task had swallowed its cancellation: on Python 3.11 "
        "`asyncio.wait_for` (pymodbus awaits every reply through it) returns the result when "
        "the reply and the cancellation arrive together (python/cpython#86296, fixed in 3.12), "
        "so the TaskGroup waits forever while the source keeps polling."
        if hung
        else ""
    )
    return (
        "CPU in ms per 1,000 recorded samples, by thread (the event loop polls, decodes and "
        "builds samples; the worker thread writes the twin and the windows and runs the "
        "detector; the site view (page, API, /metrics) runs on the loop too):\n\n"
        + "\n".join(lines)
        + note
    )


def import_seconds() -> str:
    """Wall time of the imports alone, to tell import cost from the rest of startup."""
    probe = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"
    found = []
    for modules in (
        "sqlite3, pymodbus.client",
        "edge_agent.cli.main, edge_agent.config, edge_agent.agent, "
        "edge_agent.sources.modbus.source",
    ):
        out = subprocess.run(
            [sys.executable, "-c", probe.format(modules)],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        found.append(float(out.stdout))
    return (
        f"Imports alone: minimal loop (sqlite3, pymodbus) {found[0]:.2f} s; agent (CLI, config, "
        f"agent wiring: pydantic, numpy, pymodbus...) {found[1]:.2f} s of its "
        "time to READY."
    )


def interpret(rows: list[tuple[Case, dict[str, Any], dict[str, Any]]]) -> str:
    """A few sentences computed from the tables."""
    cpu = {c: per_1000(a) / per_1000(m) for c, a, m in rows}
    plain = [(c, a, m) for c, a, m in rows if not c.model]
    fast = [cpu[c] for c, _, _ in plain if c.interval < 1]
    slow = [cpu[c] for c, _, _ in plain if c.interval >= 1]
    loop = [per_1000(a, "loop_cpu") for _, a, _ in plain]
    minimal = [per_1000(m) for _, _, m in plain]
    other = [per_1000(a) - per_1000(a, "loop_cpu") for _, a, _ in plain]
    heavy = max(rows, key=lambda row: row[1]["rate"])
    text = [
        f"Per sample the agent costs {min(fast, default=0):.2f}-{max(fast, default=0):.2f}x the "
        f"minimal loop at 100 ms and {min(slow, default=0):.2f}-{max(slow, default=0):.2f}x at "
        "1 s, where fixed per-tick work (recorder flush, detector tick, metrics snapshot) is "
        f"shared by fewer samples. Its event-loop thread alone (poll, decode, one `Sample` per "
        f"value) costs {min(loop):.1f}-{max(loop):.1f} ms per 1,000 samples, against "
        f"{min(minimal):.1f}-{max(minimal):.1f} for the whole minimal loop with its SQLite inserts;"
        f" the worker thread's twin write (ring rows, latest values, minute rollups) adds "
        f"{min(other):.1f}-{max(other):.1f}. The heaviest case ({heavy[0].label}) keeps "
        f"{heavy[1]['cpu'] / heavy[1]['wall']:.0%} of one core of this machine busy "
        f"(minimal loop {heavy[2]['cpu'] / heavy[2]['wall']:.0%}).",
    ]
    return " ".join([*text, *model_cost(rows)])


def model_cost(rows: list[tuple[Case, dict[str, Any], dict[str, Any]]]) -> list[str]:
    """What the model case adds over the same tags without detection."""
    base = {(c.tags, c.interval): a for c, a, _ in rows if not c.model}
    found = []
    for case, a, _ in rows:
        b = base.get((case.tags, case.interval))
        if case.model and b is not None:
            extra = a["cpu"] / a["wall"] - b["cpu"] / b["wall"]
            found.append(
                f"The demo model and {RULES} threshold rules add {extra * 1000:.1f} ms of CPU "
                f"per second ({extra:.2%} of a core) and {a['rss_mb'] - b['rss_mb']:.0f} MB of "
                f"peak RSS (onnxruntime); {a['alerts']} alert reached the JSONL sink."
            )
    return found


def run_cases(
    cases: list[Case], port: int, seconds: float, counter: Any
) -> list[tuple[Case, dict[str, Any], dict[str, Any]]]:
    rows = []
    for case in cases:
        with tempfile.TemporaryDirectory(prefix="e2e-") as folder:
            minimal = run_minimal(case, port, seconds, counter, Path(folder))
        with tempfile.TemporaryDirectory(prefix="e2e-") as folder:
            agent = run_agent(case, port, seconds, counter, Path(folder))
        rows.append((case, agent, minimal))
        print(f"{case.label}: agent {agent}\n  minimal {minimal}", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=15.0, help="timed window per case")
    parser.add_argument("--cases", type=int, default=len(CASES), help="run only the first N")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy run")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tags", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--interval", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.port, args.tags, args.interval, args.seconds, args.db, args.devices)
        return
    with modbus_server() as (port, counter):
        rows = run_cases(CASES[: args.cases], port, args.seconds, counter)
        profile = "" if args.no_profile else profile_with_folder(port, args.seconds)
    body = report(rows, profile, args.seconds)
    print(body)
    if not args.no_write:
        from bench.report import write_section

        write_section("agent_e2e", "Whole agent vs minimal loop", body)


def profile_with_folder(port: int, seconds: float) -> str:
    with tempfile.TemporaryDirectory(prefix="e2e-") as folder:
        return profile_agent(Case(2000, 0.1), port, min(seconds, 10.0), Path(folder))


def report(
    rows: list[tuple[Case, dict[str, Any], dict[str, Any]]], profile: str, seconds: float
) -> str:
    doc = __doc__.split("\n\n", 1)[1].strip() if __doc__ else ""
    parts = [
        doc,
        f"Timed window {seconds:g} s per case. *event-loop thread*: the main thread's share of"
        " the process CPU (the rest: the SQLite/detector worker thread, the metrics server,"
        " onnxruntime). *twin writes/s*: the recorder's counter, which moves once per 1 s flush"
        " (a cross-check, not the measure).",
        table(rows),
        f"Ratios agent / minimal:\n\n{ratios(rows)}",
        import_seconds(),
        split(rows),
        profile,
        interpret(rows),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


if __name__ == "__main__":
    main()
