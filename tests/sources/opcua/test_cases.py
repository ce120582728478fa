"""Golden cases: OPC UA nodes and what the server holds in, the samples or the error out.

Each file in ``cases/`` holds ``config`` (an OPC UA source's keys without type, name and
url), ``server`` (values written to the test server's plant nodes first, by name), and
either ``expect`` (``[signal, value, quality]``, null value for BAD) or ``error`` (a piece
of the config error's message). Each case is one real poll of the shared asyncua server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from edge_agent.sources.opcua.config import OpcuaSourceConfig
from edge_agent.sources.opcua.source import OpcuaSource
from tests.sources.opcua.server import TestServer, pki, shared_server

__all__ = ["pki", "shared_server"]  # fixtures

CASES = sorted((Path(__file__).parent / "cases").glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = yaml.safe_load(path.read_text())
    return case


def _config(case: dict[str, Any], url: str) -> OpcuaSourceConfig:
    raw = {"type": "opcua", "name": "dev", "url": url, "interval": "100ms", **case["config"]}
    return OpcuaSourceConfig.model_validate(raw)


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
async def test_case(path: Path, shared_server: TestServer) -> None:
    case = load(path)
    if "error" in case:
        with pytest.raises(ValidationError, match=case["error"]):
            _config(case, shared_server.url)
        return
    writes = case.get("server") or {}
    nodes = shared_server.nodes
    before = {name: await shared_server.arun(nodes[name].read_value) for name in writes}
    for name, value in writes.items():
        await shared_server.arun(shared_server.write, name, value)
    try:
        async with OpcuaSource(_config(case, shared_server.url)) as source:
            samples = await source.read()
    finally:  # the server is shared: leave its plant as the other tests expect it
        for name, value in before.items():
            await shared_server.arun(shared_server.write, name, value)
    got = {s.signal.removeprefix("dev."): (s.value, str(s.quality)) for s in samples}
    assert got == {name: (value, quality) for name, value, quality in case["expect"]}


def test_there_are_cases() -> None:
    assert len(CASES) >= 5
