"""OPC UA server trust through a CA: the CA in the trust list vouches for what it issued."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.errors import SourceError
from tests.sources.opcua.pki import Authority, Pki
from tests.sources.opcua.server import TestServer, pki, shared_server
from tests.sources.opcua.test_security import config, read_once, secure

__all__ = ["pki", "shared_server"]  # fixtures


async def test_server_certificate_trusted_through_its_ca(
    shared_server: TestServer, pki: Pki, tmp_path: Path
) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    pki.ca.write(trust / "plant-ca.pem")  # the CA only, not the server's own certificate
    assert await read_once(config(shared_server, secure(pki, trust))) == 7.0


async def test_server_certificate_from_another_ca_is_refused(
    shared_server: TestServer, pki: Pki, tmp_path: Path
) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    Authority.make("some other CA").write(trust / "other-ca.pem")
    message = r"issued by CN=edge-agent test CA is not trusted.*or put the certificate of its CA"
    with pytest.raises(SourceError, match=message):
        await read_once(config(shared_server, secure(pki, trust)))


async def test_a_plain_certificate_in_the_list_vouches_for_itself_only(
    shared_server: TestServer, pki: Pki, tmp_path: Path
) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    pki.ca.write_without_ca_flag(trust / "not-a-ca.der")  # same name and key as the CA
    with pytest.raises(SourceError, match="is not trusted"):
        await read_once(config(shared_server, secure(pki, trust)))
