"""The async shells: alerts the outbox refuses at stop are spilled and re-queued at start."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from edge_agent.detect.config import DetectConfig
from edge_agent.detect.detector import Detector
from edge_agent.detect.loop import DetectorLoop
from edge_agent.forward.config import OutboxConfig
from edge_agent.forward.outbox import Outbox
from edge_agent.forward.spill import read_spill, requeue_spill
from edge_agent.twin.windows import Windows
from edge_agent.worker import Worker
from tests.forward.factory import make_alert


async def test_refused_alerts_are_spilled_at_stop_and_requeued_at_start(tmp_path: Path) -> None:
    worker = Worker()
    spill = tmp_path / "unsent-alerts.json"
    try:
        outbox = await worker.run(Outbox.open, tmp_path / "outbox.db", OutboxConfig(), ["up"])
        await worker.run(outbox.close)  # the outbox refuses every put from now on
        detector = Detector(DetectConfig(), [], [])
        loop = DetectorLoop(detector, Windows(16), outbox, worker, "gw", 0.05, lambda: None)
        loop.spill = spill
        alerts = [make_alert(1), make_alert(2)]
        await loop.put(alerts)
        task = asyncio.create_task(loop.detect_forever())
        await asyncio.sleep(0.1)
        task.cancel()  # SIGTERM
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert [a.id for a in read_spill(spill)] == [a.id for a in alerts]

        fresh = await worker.run(Outbox.open, tmp_path / "outbox.db", OutboxConfig(), ["up"])
        assert await worker.run(requeue_spill, spill, fresh, "gw") == 2
        status = await worker.run(fresh.status)
        await worker.run(fresh.close)
    finally:
        worker.close()
    assert status.rows("up", "alert") == 2
    assert not spill.exists()
