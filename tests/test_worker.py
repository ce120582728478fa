"""The worker thread: order, results, errors, cancellation while queued, close."""

from __future__ import annotations

import asyncio
import threading

import pytest

from edge_agent.worker import Worker, to_the_end


async def test_jobs_run_in_order_on_one_thread_and_return_results() -> None:
    worker = Worker()
    seen: list[tuple[int, str]] = []

    def job(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        return n * n

    results = await asyncio.gather(*(worker.run(job, n) for n in range(20)))
    worker.close()
    assert results == [n * n for n in range(20)]
    assert [n for n, _ in seen] == list(range(20))
    assert {name for _, name in seen} == {"edge-db"}


async def test_an_exception_reaches_the_caller() -> None:
    worker = Worker()

    def fail() -> None:
        raise ValueError("disk on fire")

    with pytest.raises(ValueError, match="disk on fire"):
        await worker.run(fail)
    assert await worker.run(int, "7") == 7  # the thread lives on
    worker.close()


async def test_a_job_cancelled_while_queued_never_runs() -> None:
    worker = Worker()
    gate, ran = threading.Event(), list[str]()
    busy = worker.run(gate.wait)
    queued = worker.run(ran.append, "queued")
    queued.cancel()
    gate.set()
    await busy
    await worker.run(ran.append, "after")
    worker.close()
    assert ran == ["after"]


async def test_to_the_end_finishes_a_queued_job_despite_a_cancel() -> None:
    worker = Worker()
    gate, ran = threading.Event(), list[str]()
    busy = worker.run(gate.wait)
    task = asyncio.ensure_future(to_the_end(worker.run(ran.append, "kept")))
    await asyncio.sleep(0.05)
    task.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await busy
    worker.close()
    assert ran == ["kept"]


async def test_close_runs_what_is_queued_then_refuses_new_jobs() -> None:
    worker = Worker()
    ran: list[int] = []
    futures = [worker.run(ran.append, n) for n in range(5)]
    await asyncio.to_thread(worker.close)  # close() joins the thread: off the loop
    assert ran == list(range(5))
    await asyncio.gather(*futures)
    with pytest.raises(RuntimeError):
        worker.run(ran.append, 99)
