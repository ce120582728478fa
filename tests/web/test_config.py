"""The web: section: tokens from a file, and what the config refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from edge_agent.errors import ConfigError
from edge_agent.web.config import WebConfig, load_token


def test_token_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("s3cret\n")
    config = WebConfig(listen="0.0.0.0:8470", allow_remote=True, token_file=str(path))
    assert load_token(config) == "s3cret"


def test_missing_or_empty_token_file_is_a_config_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path, says in ((tmp_path / "nope", "cannot read"), (empty, "is empty")):
        with pytest.raises(ConfigError, match=says):
            load_token(WebConfig(token_file=str(path)))


def test_no_token_on_loopback() -> None:
    assert load_token(WebConfig(listen="127.0.0.1:8470")) is None
    assert load_token(WebConfig(listen="[::1]:8470", token=SecretStr("abc"))) == "abc"


@pytest.mark.parametrize(
    "keys",
    [
        {"token": "a", "token_file": "/x"},
        {"listen": "0.0.0.0:8470", "allow_remote": True, "token": ""},
        {"listen": "localhost"},
    ],
)
def test_refused(keys: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        WebConfig.model_validate(keys)
