"""OPC UA username auth with the password in a file instead of the config."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_agent.config import parse_config
from edge_agent.errors import SourceError
from edge_agent.sources.opcua.config import OpcuaSourceConfig
from tests.sources.opcua.server import PASSWORD, USER, TestServer, pki, shared_server
from tests.sources.opcua.test_security import config, read_once

__all__ = ["pki", "shared_server"]  # fixtures

CONFIG = """\
sources:
  - type: opcua
    name: pw
    url: {url}
    auth: {{type: username, username: operator, password_file: secrets/opcua.pw}}
    groups:
      - nodes: [{{name: serial, node: "ns=2;s=Pump1.Serial"}}]
"""


async def test_password_file_relative_to_the_config(
    shared_server: TestServer, tmp_path: Path
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "opcua.pw").write_text(PASSWORD + "\n")  # as `echo` writes it
    source = parse_config(CONFIG.format(url=shared_server.url), tmp_path / "a.yaml").sources[0]
    assert isinstance(source, OpcuaSourceConfig)
    assert await read_once(source) == 7.0


async def test_wrong_password_in_the_file_is_refused_and_never_logged(
    shared_server: TestServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2-not-it")
    auth = {"type": "username", "username": USER, "password_file": str(secret)}
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceError) as caught:
        await read_once(config(shared_server, {}, auth))
    assert "refused user 'operator'" in str(caught.value)
    assert "hunter2" not in caplog.text + str(caught.value) + repr(caught.value.__cause__)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read password_file {}: No such file"), ("\n", "password_file {} is empty")],
)
async def test_missing_or_empty_password_file_is_named(
    shared_server: TestServer, tmp_path: Path, content: str | None, message: str
) -> None:
    secret = tmp_path / "pw"
    if content is not None:
        secret.write_text(content)
    auth = {"type": "username", "username": USER, "password_file": str(secret)}
    with pytest.raises(SourceError, match=re.escape(message.format(secret))):
        await read_once(config(shared_server, {}, auth))


def test_password_and_password_file_together_are_a_config_error() -> None:
    raw = {
        "type": "opcua",
        "name": "pw",
        "url": "opc.tcp://plc:4840",
        "groups": [{"nodes": [{"name": "a", "node": "i=1"}]}],
    }
    auth = {"type": "username", "username": USER, "password": "x", "password_file": "pw"}
    with pytest.raises(ValidationError, match="give password or password_file, not both"):
        OpcuaSourceConfig.model_validate({**raw, "auth": auth})
    with pytest.raises(ValidationError, match="password_file is only for type username"):
        OpcuaSourceConfig.model_validate({**raw, "auth": {"password_file": "pw"}})
