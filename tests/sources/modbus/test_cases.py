"""Golden cases: a register map and what a device holds in, the samples or the error out.

Each file in ``cases/`` holds ``config`` (a Modbus source's keys without type, name and
url), ``device`` (what a real pymodbus server holds: ``holding``/``input`` map an address
to its words, ``coils``/``discrete`` to its bits; ``valid_holding`` lists the
``[start, count]`` ranges the device answers, others are illegal addresses), and either
``expect`` (``[signal, value]`` pairs, null for BAD) or ``error`` (a piece of the
config error's message). Each case is one real read over Modbus TCP on loopback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from edge_agent.sources.modbus.config import ModbusSourceConfig
from edge_agent.sources.modbus.source import ModbusSource
from edge_agent.types import Quality
from tests.conftest import free_port
from tests.sources.modbus.server import Peer, device, tcp_peer

CASES = sorted((Path(__file__).parent / "cases").glob("*.yaml"))
TABLES = {"holding": "holding", "input": "input", "coils": "coil", "discrete": "discrete"}


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = yaml.safe_load(path.read_text())
    return case


def _source_config(case: dict[str, Any], port: int) -> ModbusSourceConfig:
    raw = {"type": "modbus", "name": "dev", "url": f"tcp://127.0.0.1:{port}", **case["config"]}
    return ModbusSourceConfig.model_validate(raw)


async def _fill(peer: Peer, held: dict[str, Any]) -> None:
    for key, table in TABLES.items():
        for address, values in (held.get(key) or {}).items():
            await peer.set(1, table, int(address), values)


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
async def test_case(path: Path) -> None:
    case, port = load(path), free_port()
    if "error" in case:
        with pytest.raises(ValidationError, match=case["error"]):
            _source_config(case, port)
        return
    held = case["device"]
    valid = [tuple(r) for r in held.get("valid_holding", [(0, 300)])]
    async with tcp_peer([device(1, holding=valid)], port) as peer:
        await _fill(peer, held)
        async with ModbusSource(_source_config(case, port)) as source:
            samples = await source.read()
    got = {s.signal.removeprefix("dev."): s.value for s in samples}  # read order is the plan's
    assert got == pytest.approx(dict(case["expect"]))
    assert len(samples) == len(got)
    assert all((s.value is None) == (s.quality is Quality.BAD) for s in samples)


def test_there_are_cases() -> None:
    assert len(CASES) >= 8
