"""Drain a backlog of alerts from the outbox to a local mosquitto at QoS 1.

Compared, in the same run, with a minimal publish loop using the same client
library (aiomqtt, QoS 1, the same in-flight window and batch size, payloads
encoded beforehand): the ratio is what the outbox (SQLite take/ack in a worker
thread), encoding and the delivery loop cost. Also measures the outbox's put rate
(one alert per transaction, as the detector does, and in bulk) and its take+ack
rate without a network.

Run from the repository root: ``python -m bench.forward_drain [--alerts N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiomqtt

from bench.report import write_section
from edge_agent.forward.config import MqttSinkConfig, OutboxConfig
from edge_agent.forward.delivery import deliver_forever
from edge_agent.forward.mqtt import MqttSink
from edge_agent.forward.outbox import Outbox
from edge_agent.types import Alert, AlertKind, AlertState, Severity, alert_id

BATCH = 500
INFLIGHT = 100


def make_alert(n: int) -> Alert:
    """A realistic alert (about 400 bytes of JSON)."""
    asset = f"press{n % 8}"
    return Alert(
        id=alert_id(asset, "temp_high", float(n)),
        asset=asset,
        kind=AlertKind.RULE,
        cause="temp_high",
        severity=Severity.WARNING,
        state=AlertState.RAISED if n % 2 == 0 else AlertState.CLEARED,
        signals=("plc1.temp", "plc1.pressure"),
        score=81.5,
        threshold=75.0,
        window_start=1_700_000_000.0 + n,
        window_end=1_700_000_010.0 + n,
        reason="temperature above 75 degC for 10 s",
    )


@contextmanager
def mosquitto(folder: Path) -> Iterator[int]:
    """A mosquitto on a free loopback port, without persistence."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        f"user {pwd.getpwuid(os.getuid()).pw_name}\nmax_queued_messages 0\n"
    )
    proc = subprocess.Popen(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn`` took."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_put(folder: Path, count: int) -> dict[str, float]:
    """Put rates: one alert per transaction (fsync each), and in bulk."""
    alerts = [make_alert(n) for n in range(count)]
    single = min(2_000, count)
    outbox = Outbox.open(folder / "put.db", OutboxConfig(max_rows=10**7), ["cloud"])

    def one_each() -> None:
        for alert in alerts[:single]:
            outbox.put_alerts([alert], "gw1")

    def bulk_puts() -> None:
        for i in range(0, count, 1000):
            outbox.put_alerts(alerts[i : i + 1000], "gw1")

    one = timed(one_each)
    bulk = timed(bulk_puts)
    outbox.close()
    return {"put_one_per_s": single / one, "put_bulk_per_s": count / bulk}


def bench_take_ack(folder: Path, count: int) -> float:
    """Take+ack rate without a network (rows per second)."""
    outbox = Outbox.open(folder / "ack.db", OutboxConfig(max_rows=10**7), ["cloud"])
    for i in range(0, count, 1000):
        outbox.put_alerts([make_alert(n) for n in range(i, min(count, i + 1000))], "gw1")

    def drain() -> None:
        while batch := outbox.take("cloud", BATCH):
            outbox.ack("cloud", batch)

    seconds = timed(drain)
    outbox.close()
    return count / seconds


async def bench_raw(port: int, payloads: list[tuple[str, bytes]]) -> float:
    """The minimal loop: publish pre-encoded payloads at QoS 1, BATCH at a time."""
    client = aiomqtt.Client(
        "127.0.0.1", port, identifier="bench-raw", max_inflight_messages=INFLIGHT
    )
    client.pending_calls_threshold = BATCH + 10  # as MqttSink does
    async with client:
        start = time.perf_counter()
        for i in range(0, len(payloads), BATCH):
            await asyncio.gather(*(client.publish(t, p, qos=1) for t, p in payloads[i : i + BATCH]))
        return len(payloads) / (time.perf_counter() - start)


async def bench_drain(port: int, outbox: Outbox, count: int) -> float:
    """deliver_forever draining ``count`` alerts from the outbox; alerts per second."""
    config = MqttSinkConfig.model_validate(
        {"type": "mqtt", "name": "cloud", "host": "127.0.0.1", "port": port, "tls": "off",
         "batch_size": BATCH, "max_inflight": INFLIGHT, "client_id": "bench-sink"}
    )  # fmt: skip
    executor = ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()
    acked = 0
    done = asyncio.Event()

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        nonlocal acked
        result = await loop.run_in_executor(executor, fn, *args)
        if fn == outbox.ack:
            acked += sum(1 for r in args[1] if r.row)
            if acked >= count:
                done.set()
        return result

    wake = asyncio.Event()
    wake.set()
    start = time.perf_counter()
    task = asyncio.create_task(deliver_forever(outbox, MqttSink(config, "gw1"), "cloud", run, wake))
    await done.wait()
    seconds = time.perf_counter() - start
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    executor.shutdown()
    return count / seconds


async def bench_network(folder: Path, port: int, count: int) -> dict[str, float]:
    """Raw loop, outbox drain, raw loop again (the mean of the two raw runs is the reference)."""
    outbox = Outbox.open(
        folder / "drain.db",
        OutboxConfig.model_validate({"max_rows": 10**7, "max_size": "10GB"}),
        ["cloud"],
    )
    for i in range(0, count, 1000):
        outbox.put_alerts([make_alert(n) for n in range(i, min(count, i + 1000))], "gw1")
    payloads = [(f"edge-agent/gw1/alerts/{r.asset}", r.body) for r in outbox.take("cloud", count)]
    outbox.keep("cloud", [])
    raw1 = await bench_raw(port, payloads)
    drain = await bench_drain(port, outbox, count)
    raw2 = await bench_raw(port, payloads)
    left = outbox.status().rows("cloud")
    outbox.close()
    return {"raw_per_s": (raw1 + raw2) / 2, "raw1": raw1, "raw2": raw2, "drain_per_s": drain,
            "left": float(left)}  # fmt: skip


def main() -> None:
    """Run the benchmark and write its section of BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        puts = bench_put(folder, args.alerts)
        take_ack = bench_take_ack(folder, args.alerts)
        with mosquitto(folder) as port:
            net = asyncio.run(bench_network(folder, port, args.alerts))
    body = report(args.alerts, puts, take_ack, net)
    print(body)
    if not args.no_write:
        write_section("forward_drain", "Store-and-forward: outbox drain to MQTT (QoS 1)", body)


def report(count: int, puts: dict[str, float], take_ack: float, net: dict[str, float]) -> str:
    """The Markdown table."""
    ratio = net["drain_per_s"] / net["raw_per_s"]
    return (
        f"{count:,} alerts (~400-byte JSON each), local mosquitto, QoS 1, batch {BATCH}, "
        f"{INFLIGHT} in flight, outbox `sync: full` (fsync per commit).\n\n"
        "| measure | rate |\n|---|---|\n"
        f"| minimal aiomqtt publish loop (mean of runs before/after: "
        f"{net['raw1']:,.0f}, {net['raw2']:,.0f}) | {net['raw_per_s']:,.0f} msg/s |\n"
        f"| outbox drain through deliver_forever + MqttSink (PUBACK before ack) "
        f"| {net['drain_per_s']:,.0f} alerts/s |\n"
        f"| **ratio drain / minimal loop** (goal >= 0.7) | **{ratio:.2f}x** |\n"
        f"| outbox put, one alert per transaction | {puts['put_one_per_s']:,.0f} alerts/s |\n"
        f"| outbox put, 1,000 alerts per transaction | {puts['put_bulk_per_s']:,.0f} alerts/s |\n"
        f"| outbox take + ack, no network (batches of {BATCH}) | {take_ack:,.0f} rows/s |\n\n"
        f"Rows left in the outbox after the drain: {net['left']:.0f}.\n\n"
        "The minimal loop publishes a batch with `asyncio.gather` and waits for all its "
        "PUBACKs before the next one. The delivery loop keeps two batches in flight on the "
        "one connection (taken from SQLite and published while the previous batch awaits its "
        "PUBACKs, then acked in order), which is why it can beat the loop. Both are bound by "
        "aiomqtt's per-publish bookkeeping (a scan of pending calls, quadratic in the batch). "
        "The machine was shared with other jobs: rates vary by about 30 % between runs "
        "(see the two minimal-loop runs); puts with one fsync each vary most.\n"
    )


if __name__ == "__main__":
    main()
