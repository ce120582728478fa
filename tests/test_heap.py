"""The C heap's policy: one glibc arena for every thread, a trim now and then, harmless."""

from __future__ import annotations

import platform
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edge_agent import heap
from edge_agent.twin.config import TwinConfig
from edge_agent.twin.store import SignalStore
from edge_agent.types import Quality, Sample
from edge_agent.worker import Worker

glibc = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the policy is glibc's; a no-op elsewhere"
)

# Counts the heaps (arenas) malloc_info reports after a thread has allocated.
_ARENAS = """
import ctypes, os, sys, tempfile, threading
from edge_agent import heap
if sys.argv[1] == "one":
    assert heap.one_arena()
def work():
    blocks = [bytearray(4096) for _ in range(100)]
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.fclose.argtypes = [ctypes.c_void_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
path = os.path.join(tempfile.mkdtemp(), "info.xml")
f = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, f)
libc.fclose(f)
print(open(path).read().count("<heap nr="))
"""


# The number of blocks malloc has mapped alone, after a 1 MB block follows a freed 4 MB one.
_MAPPED = """
import ctypes, sys
from edge_agent import heap
if sys.argv[1] == "fixed":
    assert heap.fixed_thresholds()
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split())]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
big = bytearray(4 << 20)  # mapped alone; freed, glibc's own policy raises its threshold to it
del big
before = libc.mallinfo2().hblks
block = bytearray(1 << 20)
print(libc.mallinfo2().hblks - before)
"""


def _run(script: str, mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", script, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def _arenas(mode: str) -> int:
    return _run(_ARENAS, mode)


@glibc
def test_with_one_arena_every_thread_allocates_in_the_main_heap() -> None:
    assert _arenas("default") > 1  # the control: threads get arenas of their own
    assert _arenas("one") == 1


@glibc
def test_with_fixed_thresholds_a_big_block_is_mapped_even_after_a_bigger_one_was_freed() -> None:
    assert _run(_MAPPED, "default") == 0  # the control: glibc moved its threshold above 1 MB
    assert _run(_MAPPED, "fixed") == 1


def test_the_policy_is_a_no_op_off_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_glibc", lambda: None)
    assert not heap.one_arena()
    assert not heap.fixed_thresholds()
    assert not heap.trim()


@glibc
def test_trim_returns_free_pages_and_the_heap_stays_usable() -> None:
    blocks = [bytearray(64 * 1024) for _ in range(64)]
    del blocks[::2]  # holes of whole pages between live blocks
    assert heap.trim()  # some pages went back to the kernel
    assert all(b == bytearray(64 * 1024) for b in blocks)
    blocks += [bytearray(b"x" * 64 * 1024) for _ in range(32)]  # the trimmed pages reused
    assert sum(b.count(b"x") for b in blocks) == 32 * 64 * 1024


def test_the_trimmer_trims_at_most_once_per_period() -> None:
    now = [0.0]
    trimmer = heap.Trimmer(every=60.0, clock=lambda: now[0])
    for t in (1.0, 30.0, 59.9):
        now[0] = t
        trimmer()
    assert trimmer.trims == 0
    now[0] = 60.0
    trimmer()
    trimmer()
    assert trimmer.trims == 1
    now[0] = 119.0
    trimmer()
    now[0] = 120.0
    trimmer()
    assert trimmer.trims == 2


async def test_the_worker_calls_after_job_after_each_job_on_its_thread() -> None:
    seen: list[str] = []
    worker = Worker(after_job=lambda: seen.append(threading.current_thread().name))
    assert await worker.run(int, "3") == 3
    with pytest.raises(ValueError):
        await worker.run(int, "x")
    worker.close()
    assert seen == ["edge-db", "edge-db"]


async def test_twin_writes_are_intact_when_the_heap_is_trimmed_after_every_job(
    tmp_path: Path,
) -> None:
    worker = Worker(after_job=heap.Trimmer(every=0.0))
    store = await worker.run(SignalStore.open, tmp_path / "twin.db", TwinConfig())
    t0 = 1_800_000_000.0
    for step in range(50):
        batch = [Sample(f"p.s{i}", t0 + step, float(step * i), Quality.GOOD) for i in range(200)]
        await worker.run(store.write, batch)
    history = await worker.run(store.history, "p.s7", t0)
    await worker.run(store.close)
    worker.close()
    assert [(s.ts, s.value) for s in history] == [(t0 + k, float(7 * k)) for k in range(50)]
