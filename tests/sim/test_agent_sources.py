"""The agent's own sources, configured by ``Plant.source_configs``, read the plant."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import TypeAdapter

from edge_agent.registry import SourceConfig, build_source
from edge_agent.sim.agent_config import AGENT_SIGNALS
from edge_agent.sim.plant import Plant
from edge_agent.sim.scenario import Fault, Scenario
from edge_agent.types import Quality, Sample

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _config(plant: Plant, kind: str) -> Any:
    raw = next(c for c in plant.source_configs(interval="200ms") if c["type"] == kind)
    return TypeAdapter(SourceConfig).validate_python(raw)


async def _read_until_every_signal(source: Any) -> dict[str, Sample]:
    wanted = {info.signal for info in source.signals()}
    seen: dict[str, Sample] = {}
    async with source:
        for _ in range(100):
            seen |= {s.signal: s for s in await source.read()}
            if wanted <= set(seen):
                return seen
            await asyncio.sleep(0.1)
    raise AssertionError(f"never read {sorted(wanted - set(seen))}")


@pytest.mark.parametrize("kind", ["modbus", "opcua", "serial"])
async def test_rendered_config_reads_every_signal_good(plant: Plant, kind: str) -> None:
    source = build_source(_config(plant, kind))
    samples = await _read_until_every_signal(source)
    assert all(s.quality == Quality.GOOD for s in samples.values()), samples
    for physics, signal in AGENT_SIGNALS.items():
        if signal in samples:  # the agent's reading is the plant's, give or take a refresh
            assert samples[signal].value == pytest.approx(plant.values[physics], rel=0.2)


async def test_every_physics_signal_has_an_agent_name(plant: Plant) -> None:
    names = set()
    for raw in plant.source_configs():
        source = build_source(TypeAdapter(SourceConfig).validate_python(raw))
        names |= {info.signal for info in source.signals()}
    assert set(AGENT_SIGNALS.values()) <= names
    assert set(AGENT_SIGNALS) == set(plant.values)


async def test_probe_garbage_reads_bad_never_crashes() -> None:
    garbage = Scenario("garbage", (Fault("probe_garbage", -1.0, 1e6),), 5.0)
    async with Plant(garbage, opcua=False, probe_interval=0.1) as noisy:
        source = build_source(_config(noisy, "serial"))
        seen: list[Sample] = []
        async with source:
            for _ in range(100):
                seen += await source.read()
                if sum(s.quality == Quality.BAD for s in seen) >= 6:
                    break
                await asyncio.sleep(0.1)
    assert sum(s.quality == Quality.BAD for s in seen) >= 6
    assert all(s.quality == Quality.BAD for s in seen), [s for s in seen if s.quality != "bad"]
