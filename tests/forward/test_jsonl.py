"""JsonlSink: one JSON line per message, appended, through the delivery loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.errors import DeliveryError
from edge_agent.forward.config import JsonlSinkConfig, OutboxConfig
from edge_agent.forward.encode import decode
from edge_agent.forward.jsonl import JsonlSink
from edge_agent.forward.outbox import Outbox
from tests.forward.factory import make_alert
from tests.forward.harness import delivering, drained


def _sink(path: Path) -> JsonlSink:
    return JsonlSink(JsonlSinkConfig(type="jsonl", name="local", path=str(path)))


async def test_alerts_are_appended_as_json_lines(tmp_path: Path) -> None:
    target = tmp_path / "out" / "alerts.jsonl"
    target.parent.mkdir()
    target.write_bytes(b'{"v":1,"type":"status"}\n')  # existing content is kept
    outbox = Outbox.open(tmp_path / "outbox.db", OutboxConfig(), ["local"])
    alerts = [make_alert(i) for i in range(5)]
    outbox.put_alerts(alerts, "gw1")
    async with delivering(outbox, _sink(target), "local") as wake:
        wake.set()
        await drained(outbox, "local")
    lines = [decode(line) for line in target.read_bytes().splitlines()]
    assert [p["type"] for p in lines] == ["status"] + ["alert"] * 5
    assert [p["id"] for p in lines[1:]] == [a.id for a in alerts]


async def test_unwritable_path_is_a_delivery_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DeliveryError, match="cannot open"):
        async with _sink(tmp_path / "file" / "alerts.jsonl"):
            pass
