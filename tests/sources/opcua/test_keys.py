"""OPC UA keys: encrypted client and user keys, with the password from the environment."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge_agent.config import parse_config
from edge_agent.errors import SourceError
from edge_agent.sources.opcua.config import OpcuaSourceConfig
from tests.sources.opcua.pki import Pki, encrypt_key
from tests.sources.opcua.server import TestServer, pki, shared_server
from tests.sources.opcua.test_security import config, read_once, secure

__all__ = ["pki", "shared_server"]  # fixtures

CONFIG = """\
sources:
  - type: opcua
    name: enc
    url: {url}
    application_uri: urn:edge-agent:test-client
    security:
      policy: Basic256Sha256
      mode: SignAndEncrypt
      cert_file: pki/client.der
      key_file: pki/client.key.enc.pem
      key_password: ${{OPCUA_TEST_KEY_PASSWORD}}
      trust_dir: pki/trusted
    groups:
      - nodes: [{{name: serial, node: "ns=2;s=Pump1.Serial"}}]
"""


def encrypted_setup(pki: Pki, folder: Path, url: str) -> OpcuaSourceConfig:
    """A config file beside a pki/ folder with an encrypted client key; paths relative."""
    (folder / "pki").mkdir()
    shutil.copy(pki.client_cert, folder / "pki" / "client.der")
    encrypt_key(pki.client_key, folder / "pki" / "client.key.enc.pem", "correct horse")
    shutil.copytree(pki.trust_dir(f"enc-{folder.name}"), folder / "pki" / "trusted")
    source = parse_config(CONFIG.format(url=url), folder / "agent.yaml").sources[0]
    assert isinstance(source, OpcuaSourceConfig)
    return source


async def test_encrypted_client_key_with_its_password_from_the_environment(
    shared_server: TestServer, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPCUA_TEST_KEY_PASSWORD", "correct horse")
    cfg = encrypted_setup(pki, tmp_path, shared_server.url)
    assert cfg.security.key_file == str(tmp_path / "pki" / "client.key.enc.pem")
    assert "correct horse" not in repr(cfg)
    assert await read_once(cfg) == 7.0


async def test_wrong_key_password_is_a_clear_error(
    shared_server: TestServer, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPCUA_TEST_KEY_PASSWORD", "battery staple")
    cfg = encrypted_setup(pki, tmp_path, shared_server.url)
    with pytest.raises(SourceError, match=r"cannot load key_file .*a wrong key_password"):
        await read_once(cfg)


async def test_encrypted_key_without_a_password_says_to_set_one(
    shared_server: TestServer, pki: Pki, tmp_path: Path
) -> None:
    key = encrypt_key(pki.client_key, tmp_path / "k.pem", "pw")
    security = secure(pki, pki.trust_dir("nopw"), key_file=str(key))
    with pytest.raises(SourceError, match=r"k\.pem: .*encrypted; set key_password"):
        await read_once(config(shared_server, security))


async def test_encrypted_user_key(shared_server: TestServer, pki: Pki, tmp_path: Path) -> None:
    key = encrypt_key(pki.user_key, tmp_path / "user.key", "pw")  # PEM, whatever its name
    auth = {
        "type": "certificate",
        "cert_file": str(pki.user_cert),
        "key_file": str(key),
        "key_password": "pw",
    }
    assert await read_once(config(shared_server, secure(pki, pki.trust_dir("ukey")), auth)) == 7.0
