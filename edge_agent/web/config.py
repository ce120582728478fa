"""Config of the site view (the ``web:`` section): where it listens and who may read it."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator

from edge_agent.errors import ConfigError
from edge_agent.schema import ConfigPath, Secret, StrictModel, is_loopback

__all__ = ["WebConfig", "is_loopback", "load_token", "parse_listen"]


class WebConfig(StrictModel):
    """The ``web:`` section: the page, the JSON API and ``/metrics`` on one server.

    Attributes:
        listen: ``host:port`` (``[::1]:8470`` for IPv6); empty turns the server off.
        allow_remote: allow a non-loopback ``listen`` address. The page shows the
            plant's layout and values, so a remote address also needs a token.
        token: bearer token every API and ``/metrics`` request must carry
            (``Authorization: Bearer ...``); write ``${ENV_VAR}``.
        token_file: instead of ``token``: a file holding it (read at start).
        alert_history: alert events the agent keeps for ``/api/v1/alerts?state=all``.
    """

    # listen comes after the keys its check reads (pydantic validates in this order).
    allow_remote: bool = False
    token: Secret | None = None
    token_file: ConfigPath = ""
    listen: str = ""
    alert_history: int = Field(default=500, ge=10, le=100_000)

    @field_validator("listen")
    @classmethod
    def _safe_address(cls, listen: str, info: ValidationInfo) -> str:
        if not listen:
            return listen
        host, _ = parse_listen(listen)
        if is_loopback(host):
            return listen
        if not info.data.get("allow_remote"):
            raise ValueError(
                f"{listen!r} is not a loopback address; the page shows the plant's layout "
                "and values: use 127.0.0.1:PORT, or set allow_remote: true"
            )
        token = info.data.get("token")
        if (token is None or not token.get_secret_value()) and not info.data.get("token_file"):
            raise ValueError(
                f"{listen!r} is not a loopback address: set token (${{ENV_VAR}}) or "
                "token_file; every request must then carry it"
            )
        return listen

    @model_validator(mode="after")
    def _one_token(self) -> WebConfig:
        if self.token is not None and self.token_file:
            raise ValueError("give token or token_file, not both")
        return self


def load_token(config: WebConfig) -> str | None:
    """The bearer token, read from ``token_file`` if given (None: no token required).

    Raises:
        ConfigError: the token file cannot be read or is empty.
    """
    if config.token is not None:
        return config.token.get_secret_value() or None
    if not config.token_file:
        return None
    path = Path(config.token_file)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"web.token_file: cannot read {path}: {exc.strerror or exc}") from exc
    if not token:
        raise ConfigError(f"web.token_file: {path} is empty")
    return token


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` too); an empty host means every interface.

    Raises:
        ValueError: no port, or a port outside 1..65535.
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"metrics listen {listen!r}: expected host:port, e.g. 127.0.0.1:9108")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)
