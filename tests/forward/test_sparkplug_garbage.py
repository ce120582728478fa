"""Garbage in the Sparkplug sink's inputs: said in the log, never silent, never fatal.

Command topics, and the bdSeq state file in the data folder.

House rule: "Bad input gets a clear error ... never a traceback, never a restart loop,
never a silent drop". An NCMD or DCMD that is not a Sparkplug B payload cannot be
answered (it names no metric), so the journal is the one place left to say it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from tests.forward.conftest import Mosquitto
from tests.forward.harness import delivering
from tests.forward.sparkplug_host import sparkplug_host as host_on
from tests.forward.test_sparkplug import _births, _outbox, _sink

pytestmark = pytest.mark.faults

GARBAGE = [b"\xff\xff\xff\xff", b"not protobuf at all", b"\x0a\x05\x01"]


async def test_garbage_commands_are_logged_and_the_node_answers_on(
    tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge_agent")
    sink = _sink(broker.port, tmp_path, commands="on")
    async with host_on(broker.port) as host, delivering(_outbox(tmp_path), sink, "spark"):
        await host.until(_births(1))
        assert host.client is not None
        for n in range(20):  # a misbehaving host floods the topic
            body = GARBAGE[n % len(GARBAGE)]
            await host.client.publish("spBv1.0/plant/NCMD/gw1", body, qos=1)
            await host.client.publish("spBv1.0/plant/DCMD/gw1/press1", body, qos=1)
        await host.rebirth("plant", "gw1", int(time.time() * 1000))  # still listening
        await host.until(_births(2))
    unreadable = [r for r in caplog.records if "unreadable command" in r.getMessage()]
    assert unreadable, "garbage commands were dropped without a word"
    assert all(r.levelno == logging.WARNING for r in unreadable)
    assert "spBv1.0/plant/NCMD/gw1" in unreadable[0].getMessage()
    assert len(unreadable) <= 5, "a flood of garbage must not flood the journal"
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("damage", [b"", b'{"bd_seq": "x"}', b"\x00\xff{", b"[1, 2]"])
async def test_a_damaged_bdseq_file_starts_again_at_0_with_a_warning(
    tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture, damage: bytes
) -> None:
    (tmp_path / "bdseq.json").write_bytes(damage)  # cut by a power cut, or overwritten
    sink = _sink(broker.port, tmp_path)
    async with host_on(broker.port) as host, delivering(_outbox(tmp_path), sink, "spark"):
        await host.until(_births(1))
    assert host.of("NBIRTH")[0].metric("bdSeq")["value"] == 0
    assert any("bdSeq starts again at 0" in r.getMessage() for r in caplog.records)
    assert json.loads((tmp_path / "bdseq.json").read_text()) == {"bd_seq": 0}  # repaired
