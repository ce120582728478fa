"""The detector loop's poll of operator requests: no failing query on a timer, no log noise."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from edge_agent.detect import requests
from edge_agent.detect.config import DetectConfig
from edge_agent.detect.detector import Detector
from edge_agent.detect.loop import DetectorLoop
from edge_agent.forward.config import OutboxConfig
from edge_agent.forward.outbox import Outbox
from edge_agent.twin.windows import Windows
from edge_agent.worker import Worker

T0 = 1_800_000_000.0


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master")}


async def polls(path: Path, times: list[float], drop: bool = False) -> None:
    """Steps of a loop whose request poll reads the agent's own outbox file.

    Args:
        path: the outbox file, opened (created) as the agent opens it.
        times: one step at each.
        drop: drop the request table before the first step.
    """
    worker = Worker()
    try:
        outbox = await worker.run(Outbox.open, path, OutboxConfig(), ["up"])
        if drop:
            with sqlite3.connect(path) as db:
                db.execute("DROP TABLE alert_requests")
        detector = Detector(DetectConfig(), [], [])
        loop = DetectorLoop(detector, Windows(10), outbox, worker, "gw", 1.0, lambda: None)
        loop.requests = path
        for now in times:
            await loop.step(now)
        await worker.run(outbox.close)
        if loop._requests_db is not None:
            loop._requests_db.close()
    finally:
        worker.close()


async def test_the_agent_creates_the_request_table_before_the_first_ack(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge_agent")
    path = tmp_path / "outbox.db"
    await polls(path, [T0, T0 + 1.5, T0 + 3])
    # The table is there from the outbox's start: the poll's SELECT has a table to read.
    assert "alert_requests" in tables(path)
    assert [r.getMessage() for r in caplog.records if "request" in r.getMessage()] == []
    with sqlite3.connect(path) as db:
        assert requests.pending(db) == []
        # ...and a missing table is an error, no longer taken quietly for "no request yet".
        db.execute("DROP TABLE alert_requests")
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            requests.pending(db)


async def test_an_unreadable_request_table_is_said_once_then_its_recovery(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent")
    # A file whose table went away (restored from an old backup by hand): every poll fails,
    # the log says so once, and once more when an `alerts ack` brings the table back.
    path = tmp_path / "outbox.db"
    worker = Worker()
    try:
        outbox = await worker.run(Outbox.open, path, OutboxConfig(), ["up"])
        with sqlite3.connect(path) as db:
            db.execute("DROP TABLE alert_requests")
        detector = Detector(DetectConfig(), [], [])
        loop = DetectorLoop(detector, Windows(10), outbox, worker, "gw", 1.0, lambda: None)
        loop.requests = path
        for i in range(4):
            await loop.step(T0 + 1.5 * i)
        db = requests.connect(path)
        requests.submit(db, "ack", "ffff", 0.0, "ana")
        for i in range(4, 7):
            await loop.step(T0 + 1.5 * i)
        answer = requests.result(db, 1)
        db.close()
        await worker.run(outbox.close)
        if loop._requests_db is not None:
            loop._requests_db.close()
    finally:
        worker.close()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("alert request")]
    assert len(lines) == 3, lines
    assert "cannot read" in lines[0] and "no such table" in lines[0]
    assert lines[1].startswith("alert requests: readable again")
    assert lines[2].startswith("alert request 1 (ack ffff): refused")
    assert answer is not None and answer.startswith("refused")
