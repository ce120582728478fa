"""Fixtures shared by every test folder."""

from __future__ import annotations

import io
import logging
import socket
from collections.abc import Iterator

import pytest


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def port() -> int:
    """A free loopback TCP port."""
    return free_port()


@pytest.fixture(autouse=True)
def _keep_root_log_level() -> Iterator[None]:
    """`edge-agent run` sets the root logger's level (the service must): undo it after a test."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


@pytest.fixture
def agent_log() -> Iterator[io.StringIO]:
    """The agent's own log setup (as `edge-agent run` makes it), writing into a string."""
    from edge_agent.logs import LIBRARIES, setup_logging

    out = io.StringIO()
    handler = setup_logging("info", out)
    yield out
    logging.getLogger().removeHandler(handler)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET)
