"""Certificate validity dates: a server certificate out of its dates is refused, ours too.

Each server here is a real asyncua server whose certificate, issued by the test
CA, is expired, not yet valid, or expires in ten days.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.errors import SourceError
from tests.conftest import free_port
from tests.sources.opcua.pki import SERVER_URI, Pki, self_signed_client
from tests.sources.opcua.server import TestServer, pki, shared_server
from tests.sources.opcua.test_security import config, read_once, secure

__all__ = ["pki", "shared_server"]  # fixtures

DATES = {"expired": (-60, -1), "future": (2, 400), "soon": (-1, 10)}


@pytest.fixture(scope="module")
def dated(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TestServer]]:
    """One server per entry of DATES, its certificate issued by the test CA with those days."""
    root = tmp_path_factory.mktemp("dated")
    servers = {}
    for label, days in DATES.items():
        cert, key = root / f"{label}.der", root / f"{label}.key.pem"
        pki.ca.issue_server(cert, key, SERVER_URI, days)
        server = TestServer(free_port(), dataclasses.replace(pki, server_cert=cert, server_key=key))
        server.start()
        servers[label] = server
    yield servers
    for server in servers.values():
        server.close()


def ca_trust(pki: Pki, tmp_path: Path) -> Path:
    trust = tmp_path / "trust"
    trust.mkdir()
    pki.ca.write(trust / "plant-ca.pem")
    return trust


async def test_expired_server_certificate_is_refused(
    dated: dict[str, TestServer], pki: Pki, tmp_path: Path
) -> None:
    cfg = config(dated["expired"], secure(pki, ca_trust(pki, tmp_path)))
    message = (
        r"^sec: server certificate CN=test server \(sha1 [0-9a-f]{40}\) expired on "
        r"\d{4}-\d\d-\d\d \d\d:\d\d UTC \(valid .* to .*; now .*\); "
        r"ask the server's administrator for a new certificate"
    )
    with pytest.raises(SourceError, match=message):
        await read_once(cfg)


async def test_not_yet_valid_server_certificate_is_refused(
    dated: dict[str, TestServer], pki: Pki, tmp_path: Path
) -> None:
    cfg = config(dated["future"], secure(pki, ca_trust(pki, tmp_path)))
    with pytest.raises(SourceError, match=r"is not valid before .*set this gateway's clock"):
        await read_once(cfg)


async def test_expired_certificate_in_the_trust_list_itself_is_refused(
    dated: dict[str, TestServer], pki: Pki, tmp_path: Path
) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    assert dated["expired"].pki is not None
    (trust / "server.der").write_bytes(dated["expired"].pki.server_cert.read_bytes())
    with pytest.raises(SourceError, match="expired on"):
        await read_once(config(dated["expired"], secure(pki, trust)))


async def test_first_use_does_not_pin_an_expired_certificate(
    dated: dict[str, TestServer], pki: Pki, tmp_path: Path
) -> None:
    trust = tmp_path / "trust"
    with pytest.raises(SourceError, match="expired on"):
        await read_once(config(dated["expired"], secure(pki, trust, trust="first_use")))
    assert not trust.exists() or not list(trust.glob("*.der"))


async def test_certificate_expiring_soon_is_warned_about_once(
    dated: dict[str, TestServer], pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = config(dated["soon"], secure(pki, ca_trust(pki, tmp_path)))
    with caplog.at_level(logging.WARNING):
        assert await read_once(cfg) == 7.0
        assert await read_once(cfg) == 7.0
    said = [r.getMessage() for r in caplog.records if "expires on" in r.getMessage()]
    assert len(said) == 1, said
    assert "CN=test server" in said[0] and "in 9 day(s)" in said[0]


@pytest.mark.parametrize(
    ("days", "state"), [((-30, -1), "expired on"), ((1, 100), "is not valid before")]
)
async def test_our_own_certificate_out_of_its_dates_is_said(
    shared_server: TestServer, pki: Pki, tmp_path: Path, days: tuple[int, int], state: str
) -> None:
    cert = self_signed_client(tmp_path / "client.der", tmp_path / "client.key.pem", days)
    security = secure(pki, pki.trust_dir(f"own-{days[0]}"))
    security.update(cert_file=str(cert), key_file=str(tmp_path / "client.key.pem"))
    cfg = config(shared_server, security)
    (warning,) = cfg.warnings()  # what check-config prints
    assert f"security.cert_file {cert} {state}" in warning and "opcua gen-cert" in warning
    with pytest.raises(SourceError, match=rf"^sec: our certificate {cert} {state} .*gen-cert"):
        await read_once(cfg)


async def test_our_certificate_expiring_soon_is_warned_by_check_config(
    pki: Pki, shared_server: TestServer, tmp_path: Path
) -> None:
    cert = self_signed_client(tmp_path / "client.der", tmp_path / "client.key.pem", (-1, 5))
    security = secure(pki, tmp_path, cert_file=str(cert))
    (warning,) = config(shared_server, security).warnings()
    assert "expires on" in warning
    assert config(shared_server, secure(pki, tmp_path)).warnings() == []
