"""Fixtures of the Modbus source tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sources.modbus.server import pty_pair


@pytest.fixture
def line(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A serial line: two linked ptys (server end, client end)."""
    with pty_pair(tmp_path) as pair:
        yield pair
