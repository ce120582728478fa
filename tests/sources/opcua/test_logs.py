"""asyncua's own log lines through the agent's log setup: a refused certificate, retried."""

from __future__ import annotations

import io
import logging

import pytest

from edge_agent.errors import SourceError
from tests.sources.opcua.pki import Pki
from tests.sources.opcua.server import TestServer, pki, shared_server
from tests.sources.opcua.test_security import config, read_once, secure

__all__ = ["pki", "shared_server"]  # fixtures

RETRIES = 4


async def test_refused_certificate_retries_leave_no_tracebacks(
    shared_server: TestServer, pki: Pki, agent_log: io.StringIO
) -> None:
    security = secure(
        pki,
        pki.trust_dir("rogue-logs"),
        cert_file=str(pki.rogue_cert),
        key_file=str(pki.rogue_key),
    )
    raw: list[str] = []
    capture = logging.Handler()
    capture.emit = lambda record: raw.append(record.name)  # type: ignore[method-assign]
    logging.getLogger("asyncua").addHandler(capture)
    try:
        for _ in range(RETRIES):
            with pytest.raises(SourceError, match="refused our certificate"):
                await read_once(config(shared_server, security))
    finally:
        logging.getLogger("asyncua").removeHandler(capture)
    text = agent_log.getvalue()
    assert "Traceback" not in text and "\n  File " not in text, text
    library = [line for line in text.splitlines() if " asyncua." in line]
    # asyncua (client and this in-process server) said it 3 times per attempt: logged once.
    assert len(raw) >= 2 * RETRIES and len(library) <= len(set(raw)), (raw, text)
