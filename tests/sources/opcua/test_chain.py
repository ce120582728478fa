"""Intermediate CAs: server certificate -> issuing CA (in trust_dir/issuers) -> trusted root.

The server's certificate is issued by an intermediate CA that a root CA certified.
Only the root is in the trust list; the intermediate is in ``issuers/``, which
links certificates but trusts nothing by itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_agent.errors import SourceError
from tests.conftest import free_port
from tests.sources.opcua.pki import SERVER_URI, Authority, Pki
from tests.sources.opcua.server import TestServer, pki, shared_server
from tests.sources.opcua.test_security import config, read_once, secure

__all__ = ["pki", "shared_server"]  # fixtures


@dataclass(frozen=True)
class Plant:
    """A running server whose certificate the intermediate CA issued."""

    root: Authority
    issuing: Authority
    server: TestServer
    serial: int


@pytest.fixture(scope="module")
def plant(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plant]:
    folder = tmp_path_factory.mktemp("chain")
    root = Authority.make("plant root CA", path_length=None)
    issuing = root.issue_ca("plant issuing CA")
    cert, key = folder / "server.der", folder / "server.key.pem"
    serial = issuing.issue_server(cert, key, SERVER_URI).serial_number
    server = TestServer(free_port(), dataclasses.replace(pki, server_cert=cert, server_key=key))
    server.start()
    yield Plant(root, issuing, server, serial)
    server.close()


def trust(plant: Plant, tmp_path: Path, intermediate: bool = True) -> Path:
    folder = tmp_path / "trust"
    plant.root.write(folder / "root.pem")
    if intermediate:
        plant.issuing.write(folder / "issuers" / "issuing.pem")
    return folder


async def test_chain_through_an_intermediate_ca_is_trusted(
    plant: Plant, pki: Pki, tmp_path: Path
) -> None:
    assert await read_once(config(plant.server, secure(pki, trust(plant, tmp_path)))) == 7.0


async def test_without_the_intermediate_the_chain_is_not_trusted(
    plant: Plant, pki: Pki, tmp_path: Path
) -> None:
    cfg = config(plant.server, secure(pki, trust(plant, tmp_path, intermediate=False)))
    with pytest.raises(SourceError, match="issued by CN=plant issuing CA is not trusted"):
        await read_once(cfg)


async def test_an_intermediate_alone_trusts_nothing(plant: Plant, pki: Pki, tmp_path: Path) -> None:
    folder = tmp_path / "trust"
    plant.issuing.write(folder / "issuers" / "issuing.pem")  # no root in the list
    with pytest.raises(SourceError, match="is not trusted"):
        await read_once(config(plant.server, secure(pki, folder)))


async def test_an_expired_intermediate_is_refused(plant: Plant, pki: Pki, tmp_path: Path) -> None:
    folder = trust(plant, tmp_path, intermediate=False)
    expired = plant.root.certify(plant.issuing, days=(-90, -1))  # same name and key
    plant.issuing.write(folder / "issuers" / "issuing.pem", expired)
    message = r"CN=test server .*: its CA CN=plant issuing CA expired on .*renew that CA"
    with pytest.raises(SourceError, match=message):
        await read_once(config(plant.server, secure(pki, folder)))


async def test_a_root_that_allows_no_intermediate_is_refused(
    plant: Plant, pki: Pki, tmp_path: Path
) -> None:
    folder = trust(plant, tmp_path)
    strict_root = plant.root.certify(plant.root, path_length=0)  # same name and key
    plant.root.write(folder / "root.pem", strict_root)
    with pytest.raises(SourceError, match=r"allows 0 intermediate CA\(s\) below it"):
        await read_once(config(plant.server, secure(pki, folder)))


async def test_a_revoked_intermediate_is_refused(plant: Plant, pki: Pki, tmp_path: Path) -> None:
    crl = plant.root.revoke([plant.issuing.cert.serial_number], tmp_path / "root.crl")
    cfg = config(plant.server, secure(pki, trust(plant, tmp_path), crl=str(crl)))
    with pytest.raises(SourceError, match="its CA CN=plant issuing CA is revoked"):
        await read_once(cfg)


async def test_a_server_certificate_revoked_by_the_intermediate_is_refused(
    plant: Plant, pki: Pki, tmp_path: Path
) -> None:
    crl = plant.issuing.revoke([plant.serial], tmp_path / "issuing.crl")
    cfg = config(plant.server, secure(pki, trust(plant, tmp_path), crl=str(crl)))
    with pytest.raises(SourceError, match=r"CN=test server \(sha1 \w+\) is revoked"):
        await read_once(cfg)
