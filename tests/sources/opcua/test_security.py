"""OpcuaSource security: policies and modes, identities, trust, clear refusals; gen-cert."""

from __future__ import annotations

import argparse
import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from edge_agent.cli.opcua import register
from edge_agent.errors import SourceError
from edge_agent.sources.opcua.config import OpcuaSourceConfig
from edge_agent.sources.opcua.source import OpcuaSource
from edge_agent.types import Quality
from tests.sources.opcua.pki import CLIENT_URI, Pki
from tests.sources.opcua.server import PASSWORD, USER, RefusingPeer, TestServer, pki, shared_server

__all__ = ["pki", "shared_server"]  # fixtures


def config(
    server: TestServer, security: dict[str, Any], auth: dict[str, Any] | None = None
) -> OpcuaSourceConfig:
    raw: dict[str, Any] = {
        "type": "opcua",
        "name": "sec",
        "url": server.url,
        "application_uri": CLIENT_URI,
        "security": security,
        "groups": [{"nodes": [{"name": "serial", "node": "ns=2;s=Pump1.Serial"}]}],
    }
    if auth is not None:
        raw["auth"] = auth
    return OpcuaSourceConfig.model_validate(raw)


def secure(
    pki: Pki, folder: Path, policy: str = "Basic256Sha256", mode: str = "SignAndEncrypt", **kw: str
) -> dict[str, Any]:
    return {
        "policy": policy,
        "mode": mode,
        "cert_file": str(pki.client_cert),
        "key_file": str(pki.client_key),
        "trust_dir": str(folder),
        **kw,
    }


async def read_once(cfg: OpcuaSourceConfig) -> float | None:
    async with OpcuaSource(cfg) as src:
        (sample,) = await src.read()
    assert sample.quality is Quality.GOOD
    return sample.value


@pytest.mark.parametrize(
    "policy", ["Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"]
)
@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
async def test_each_policy_and_mode(
    shared_server: TestServer, pki: Pki, policy: str, mode: str
) -> None:
    trust = pki.trust_dir(f"{policy}-{mode}")
    assert await read_once(config(shared_server, secure(pki, trust, policy, mode))) == 7.0


async def test_username_password_over_encrypted_channel(
    shared_server: TestServer, pki: Pki
) -> None:
    auth = {"type": "username", "username": USER, "password": PASSWORD}
    cfg = config(shared_server, secure(pki, pki.trust_dir("user")), auth)
    assert await read_once(cfg) == 7.0


async def test_wrong_password_is_a_clear_error(shared_server: TestServer, pki: Pki) -> None:
    auth = {"type": "username", "username": USER, "password": "wrong"}
    cfg = config(shared_server, secure(pki, pki.trust_dir("wrong")), auth)
    with pytest.raises(
        SourceError, match=r"refused user 'operator'.*check the username and password"
    ):
        await read_once(cfg)


async def test_x509_user_identity(shared_server: TestServer, pki: Pki) -> None:
    auth = {
        "type": "certificate",
        "cert_file": str(pki.user_cert),
        "key_file": str(pki.user_key),
    }
    cfg = config(shared_server, secure(pki, pki.trust_dir("x509")), auth)
    assert await read_once(cfg) == 7.0


async def test_unknown_x509_user_is_refused(shared_server: TestServer, pki: Pki) -> None:
    auth = {
        "type": "certificate",
        "cert_file": str(pki.rogue_cert),
        "key_file": str(pki.rogue_key),
    }
    cfg = config(shared_server, secure(pki, pki.trust_dir("x509-rogue")), auth)
    with pytest.raises(SourceError, match="refused user"):
        await read_once(cfg)


async def test_client_certificate_refused_by_server_is_a_clear_error(
    shared_server: TestServer, pki: Pki
) -> None:
    security = secure(
        pki, pki.trust_dir("rogue"), cert_file=str(pki.rogue_cert), key_file=str(pki.rogue_key)
    )
    with pytest.raises(SourceError, match=re.escape(f"refused our certificate {pki.rogue_cert}")):
        await read_once(config(shared_server, security))


async def test_untrusted_server_is_refused_and_kept_for_review(
    shared_server: TestServer, pki: Pki, tmp_path: Path
) -> None:
    trust = tmp_path / "trust"
    trust.mkdir()
    with pytest.raises(SourceError, match=r"is not trusted.*move .*rejected"):
        await read_once(config(shared_server, secure(pki, trust)))
    (rejected,) = (trust / "rejected").iterdir()
    assert rejected.read_bytes() == pki.server_cert.read_bytes()


async def test_trust_on_first_use_pins_the_first_certificate(
    shared_server: TestServer, pki: Pki, tmp_path: Path
) -> None:
    trust = tmp_path / "tofu"
    assert await read_once(config(shared_server, secure(pki, trust, trust="first_use"))) == 7.0
    (pinned,) = trust.glob("*.der")
    assert pinned.read_bytes() == pki.server_cert.read_bytes()
    assert await read_once(config(shared_server, secure(pki, trust, trust="first_use"))) == 7.0


async def test_first_use_does_not_replace_a_pinned_certificate(
    shared_server: TestServer, pki: Pki, tmp_path: Path
) -> None:
    trust = tmp_path / "pinned"
    trust.mkdir()
    (trust / "other.der").write_bytes(pki.user_cert.read_bytes())  # some other server's
    with pytest.raises(SourceError, match="is not trusted"):
        await read_once(config(shared_server, secure(pki, trust, trust="first_use")))


async def test_missing_key_file_is_named(
    shared_server: TestServer, pki: Pki, tmp_path: Path
) -> None:
    security = secure(pki, pki.trust_dir("nokey"), key_file=str(tmp_path / "nope.pem"))
    with pytest.raises(SourceError, match=r"key_file .*nope\.pem not found"):
        await read_once(config(shared_server, security))


def test_security_config_must_be_consistent() -> None:
    with pytest.raises(ValueError, match="needs cert_file, key_file, trust_dir"):
        OpcuaSourceConfig.model_validate(
            {
                "type": "opcua",
                "name": "x",
                "url": "opc.tcp://h:4840",
                "security": {"policy": "Basic256Sha256", "mode": "Sign"},
                "groups": [{"nodes": [{"name": "a", "node": "i=1"}]}],
            }
        )


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["opcua", "gen-cert", *argv])
    return int(args.func(args))


def test_gen_cert_writes_a_certificate_with_the_application_uri(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.der", tmp_path / "k.pem"
    assert (
        run_cli("--cert", str(cert), "--key", str(key), "--application-uri", "urn:gw7:edge-agent")
        == 0
    )
    loaded = x509.load_der_x509_certificate(cert.read_bytes())
    san = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:gw7:edge-agent"]
    assert key.stat().st_mode & 0o077 == 0
    assert run_cli("--cert", str(cert), "--key", str(key)) == 1  # no silent overwrite


async def test_channel_refused_at_open_is_a_clear_error() -> None:
    loop = asyncio.get_running_loop()
    peer = await loop.create_server(RefusingPeer, "127.0.0.1", 0)
    port = peer.sockets[0].getsockname()[1]
    cfg = OpcuaSourceConfig.model_validate(
        {
            "type": "opcua",
            "name": "sec",
            "url": f"opc.tcp://127.0.0.1:{port}",
            "timeout": "2s",
            "groups": [{"nodes": [{"name": "a", "node": "i=2259"}]}],
        }
    )
    try:
        with pytest.raises(SourceError, match="closed the connection during the handshake"):
            await read_once(cfg)
    finally:
        peer.close()


async def test_username_password_without_channel_security(shared_server: TestServer) -> None:
    # Common on plant floors; the server's token policy decides whether the password is encrypted.
    auth = {"type": "username", "username": USER, "password": PASSWORD}
    assert await read_once(config(shared_server, {}, auth)) == 7.0


async def test_x509_user_without_channel_security(shared_server: TestServer, pki: Pki) -> None:
    auth = {
        "type": "certificate",
        "cert_file": str(pki.user_cert),
        "key_file": str(pki.user_key),
    }
    assert await read_once(config(shared_server, {}, auth)) == 7.0


async def test_x509_user_refused_without_channel_security_is_named(
    shared_server: TestServer, pki: Pki
) -> None:
    auth = {
        "type": "certificate",
        "cert_file": str(pki.rogue_cert),
        "key_file": str(pki.rogue_key),
    }
    with pytest.raises(SourceError, match=re.escape(f"refused user certificate {pki.rogue_cert}")):
        await read_once(config(shared_server, {}, auth))
