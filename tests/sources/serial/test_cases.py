"""Golden cases: a config and the bytes a device sent in, the samples or the error out.

Each file in ``cases/`` holds ``config`` (a serial source without type, name
and port), ``input`` (the bytes, as a YAML double-quoted string: ``\\r\\n``, ``\\x02``),
and either ``expect`` (``[signal, value]`` pairs in order, null for BAD) with
``counters``, or ``error`` (a piece of the config error's message).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from edge_agent.sources.serial.config import SerialSourceConfig
from edge_agent.sources.serial.decode import decode_bytes
from edge_agent.types import Quality

CASES = sorted((Path(__file__).parent / "cases").glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = yaml.safe_load(path.read_text())
    return case


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_case(path: Path) -> None:
    case = load(path)
    raw = {"type": "serial", "name": "dev", "port": "/dev/ttyUSB0", **case["config"]}
    if "error" in case:
        with pytest.raises(ValidationError, match=case["error"]):
            SerialSourceConfig.model_validate(raw)
        return
    samples, counters = decode_bytes(
        SerialSourceConfig.model_validate(raw), case["input"].encode("latin-1")
    )
    assert [s.signal.removeprefix("dev.") for s in samples] == [e[0] for e in case["expect"]]
    assert [s.value for s in samples] == pytest.approx([e[1] for e in case["expect"]])
    assert all((s.value is None) == (s.quality is Quality.BAD) for s in samples)
    assert dict(counters) == case["counters"]


def test_there_are_cases() -> None:
    assert len(CASES) >= 8
