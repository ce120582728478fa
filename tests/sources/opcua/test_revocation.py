"""Revocation lists: a server certificate its CA has revoked is refused; forged CRLs are not."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography import x509

from edge_agent.errors import SourceError
from tests.sources.opcua.pki import Authority, Pki
from tests.sources.opcua.server import TestServer, pki, shared_server
from tests.sources.opcua.test_security import config, read_once, secure

__all__ = ["pki", "shared_server"]  # fixtures


def serial(pki: Pki) -> int:
    return x509.load_der_x509_certificate(pki.server_cert.read_bytes()).serial_number


def trust_with_ca(pki: Pki, tmp_path: Path) -> Path:
    trust = tmp_path / "trust"
    trust.mkdir()
    pki.ca.write(trust / "plant-ca.pem")
    return trust


async def test_revoked_server_certificate_is_refused(
    shared_server: TestServer, pki: Pki, tmp_path: Path
) -> None:
    crl = pki.ca.revoke([12345, serial(pki)], tmp_path / "plant-ca.crl")
    cfg = config(shared_server, secure(pki, trust_with_ca(pki, tmp_path), crl=str(crl)))
    message = rf"^sec: server certificate CN=test server .* is revoked \(since .*, by {crl}\); "
    with pytest.raises(SourceError, match=message + "ask the server's administrator"):
        await read_once(cfg)


async def test_a_pem_crl_in_a_directory_is_read_too(
    shared_server: TestServer, pki: Pki, tmp_path: Path
) -> None:
    folder = tmp_path / "crl"
    folder.mkdir()
    pki.ca.revoke([12345], folder / "old.pem", pem=True)  # lists another certificate
    cfg = config(shared_server, secure(pki, trust_with_ca(pki, tmp_path), crl=str(folder)))
    assert await read_once(cfg) == 7.0
    pki.ca.revoke([serial(pki)], folder / "new.pem", pem=True)  # read at the next connect
    with pytest.raises(SourceError, match="is revoked"):
        await read_once(cfg)


async def test_a_crl_not_signed_by_the_trusted_ca_is_ignored(
    shared_server: TestServer, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    forger = Authority.make(pki.ca.cert.subject.rfc4514_string().removeprefix("CN="))
    crl = forger.revoke([serial(pki)], tmp_path / "forged.crl")  # same issuer name, other key
    cfg = config(shared_server, secure(pki, trust_with_ca(pki, tmp_path), crl=str(crl)))
    with caplog.at_level(logging.WARNING):
        assert await read_once(cfg) == 7.0
    assert any("not signed by a trusted CA" in r.getMessage() for r in caplog.records)


async def test_a_missing_crl_is_refused_rather_than_unchecked(
    shared_server: TestServer, pki: Pki, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.crl"
    cfg = config(shared_server, secure(pki, trust_with_ca(pki, tmp_path), crl=str(missing)))
    assert cfg.warnings() == [f"sec: security.crl {missing} not found: connects fail"]
    with pytest.raises(SourceError, match=rf"crl {missing} not found; revocation cannot be"):
        await read_once(cfg)


async def test_a_stale_crl_still_refuses_and_asks_for_a_fresh_one(
    shared_server: TestServer, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crl = pki.ca.revoke([serial(pki)], tmp_path / "stale.crl", due=-2)
    cfg = config(shared_server, secure(pki, trust_with_ca(pki, tmp_path), crl=str(crl)))
    with caplog.at_level(logging.WARNING), pytest.raises(SourceError, match="is revoked"):
        await read_once(cfg)
    assert any("was due for renewal" in r.getMessage() for r in caplog.records)
