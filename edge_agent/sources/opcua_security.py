"""OPC UA security: secure channel policy and mode, server trust, user identity.

The server's certificate is taken from its endpoint list and checked against
our trust list *before* the secure channel is opened, so an unknown server is
refused with a message that names the certificate to trust, instead of failing
deep inside the handshake. ``trust: first_use`` pins the first certificate seen
into the (empty) trust directory; any other certificate is refused afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import model_validator

from edge_agent.errors import SourceError
from edge_agent.schema import ConfigPath, Secret, StrictModel

if TYPE_CHECKING:
    from asyncua.client.client import Client
    from asyncua.ua.uaprotocol_auto import EndpointDescription
    from cryptography import x509

log = logging.getLogger(__name__)

Policy = Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"]
Mode = Literal["None", "Sign", "SignAndEncrypt"]

_POLICY_CLASSES = {
    "Basic256Sha256": "SecurityPolicyBasic256Sha256",
    "Aes128_Sha256_RsaOaep": "SecurityPolicyAes128Sha256RsaOaep",
    "Aes256_Sha256_RsaPss": "SecurityPolicyAes256Sha256RsaPss",
}


class OpcuaSecurityConfig(StrictModel):
    """Secure channel settings.

    Attributes:
        policy: security policy of the channel.
        mode: ``Sign`` or ``SignAndEncrypt`` (``None`` with policy ``None``).
        certificate: our application certificate (DER or PEM), see ``opcua gen-cert``.
        private_key: its private key (PEM or DER).
        private_key_password: if the key is encrypted.
        trusted_certs: directory of trusted server certificates (or their CAs).
        trust: ``list``: only certificates in ``trusted_certs``; ``first_use``: an
            empty directory takes the first server certificate seen, then acts as a list.
    """

    policy: Policy = "None"
    mode: Mode = "None"
    certificate: ConfigPath = ""
    private_key: ConfigPath = ""
    private_key_password: Secret | None = None
    trusted_certs: ConfigPath = ""
    trust: Literal["list", "first_use"] = "list"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.policy == "None") != (self.mode == "None"):
            raise ValueError(
                "policy None goes with mode None; other policies need Sign or SignAndEncrypt"
            )
        if self.policy != "None":
            missing = [
                k for k in ("certificate", "private_key", "trusted_certs") if not getattr(self, k)
            ]
            if missing:
                raise ValueError(f"policy {self.policy} needs {', '.join(missing)}")
        return self


class OpcuaAuthConfig(StrictModel):
    """User identity presented when the session is activated.

    Attributes:
        type: ``anonymous``, ``username`` or ``certificate`` (X.509 user token).
        username: for ``username``.
        password: for ``username``; write ``${ENV_VAR}``.
        certificate: for ``certificate``: the user's certificate (DER or PEM).
        private_key: for ``certificate``: its private key.
    """

    type: Literal["anonymous", "username", "certificate"] = "anonymous"
    username: str = ""
    password: Secret | None = None
    certificate: ConfigPath = ""
    private_key: ConfigPath = ""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.type == "username" and not self.username:
            raise ValueError("type username needs username (and usually password)")
        if self.type == "certificate" and not (self.certificate and self.private_key):
            raise ValueError("type certificate needs certificate and private_key")
        return self


async def apply_security(client: Client, config: OpcuaSecurityConfig, name: str) -> None:
    """Set the channel's policy and mode on ``client``, after checking the server's certificate.

    Raises:
        SourceError: no matching endpoint, an untrusted server, or unreadable files.
    """
    if config.policy == "None":
        return
    from asyncua.crypto import security_policies

    policy = getattr(security_policies, _POLICY_CLASSES[config.policy])
    endpoint = await _endpoint(client, policy.URI, config, name)
    server_der = _first_certificate(endpoint.ServerCertificate)
    await asyncio.to_thread(check_trust, server_der, config, name)
    password = config.private_key_password
    try:
        await client.set_security(
            policy,
            _existing(config.certificate, "certificate", name),
            _existing(config.private_key, "private_key", name),
            password.get_secret_value() if password else None,
            server_certificate=server_der,
            mode=_mode(config.mode),
        )
    except ValueError as exc:  # cryptography: not a certificate / key, or a wrong key password
        raise SourceError(f"{name}: cannot load our certificate or key: {exc}") from exc


async def apply_auth(client: Client, config: OpcuaAuthConfig, name: str) -> None:
    """Set the user identity on ``client``."""
    if config.type == "username":
        client.set_user(config.username)
        if config.password is not None:
            client.set_password(config.password.get_secret_value())
    elif config.type == "certificate":
        try:
            await client.load_client_certificate(_existing(config.certificate, "certificate", name))
            await client.load_private_key(Path(_existing(config.private_key, "private_key", name)))
        except ValueError as exc:
            raise SourceError(f"{name}: cannot load the user certificate or key: {exc}") from exc


def _mode(mode: Mode) -> Any:
    from asyncua import ua

    return getattr(ua.MessageSecurityMode, mode)


def _existing(path: str, key: str, name: str) -> str:
    if not Path(path).is_file():
        raise SourceError(f"{name}: {key} file {path} not found")
    return path


async def _endpoint(
    client: Client, uri: str, config: OpcuaSecurityConfig, name: str
) -> EndpointDescription:
    endpoints = await client.connect_and_get_server_endpoints()
    mode = _mode(config.mode)
    for endpoint in endpoints:
        if endpoint.SecurityPolicyUri == uri and endpoint.SecurityMode == mode:
            return endpoint
    offered = sorted(
        {f"{e.SecurityPolicyUri.rsplit('#', 1)[-1]}/{e.SecurityMode.name}" for e in endpoints}
    )
    raise SourceError(
        f"{name}: server offers no endpoint {config.policy}/{config.mode}; "
        f"it offers {', '.join(offered)}"
    )


def _first_certificate(der: bytes) -> bytes:
    # A server may send its chain; the leaf is the first DER SEQUENCE (4-byte header).
    length = int.from_bytes(der[2:4], "big") + 4
    return der[:length]


def check_trust(server_der: bytes, config: OpcuaSecurityConfig, name: str) -> None:
    """Accept the server certificate if the trust list holds it (or its issuer).

    With ``trust: first_use`` and an empty trust directory, the certificate is
    stored there and accepted (pinned).

    Raises:
        SourceError: untrusted certificate, naming the file to add to the trust list.
    """
    from cryptography import x509

    folder = Path(config.trusted_certs)
    trusted = _load_trusted(folder)
    cert = x509.load_der_x509_certificate(server_der)
    if any(_vouches(anchor, cert) for anchor in trusted):
        return
    thumb = hashlib.sha1(server_der, usedforsecurity=False).hexdigest()
    if config.trust == "first_use" and not trusted:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{thumb}.der").write_bytes(server_der)
        log.warning("%s: trusting server certificate %s on first use (pinned)", name, thumb)
        return
    rejected = folder / "rejected"
    rejected.mkdir(parents=True, exist_ok=True)
    (rejected / f"{thumb}.der").write_bytes(server_der)
    raise SourceError(
        f"{name}: server certificate {cert.subject.rfc4514_string()} (sha1 {thumb}) is not "
        f"trusted; if it is the right server, move {rejected / (thumb + '.der')} into {folder}"
    )


def _load_trusted(folder: Path) -> list[x509.Certificate]:
    from cryptography import x509

    certs = []
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        data = path.read_bytes() if path.suffix.lower() in (".der", ".pem", ".crt") else b""
        if not data:
            continue
        try:
            loader = (
                x509.load_pem_x509_certificate
                if b"-----BEGIN" in data
                else x509.load_der_x509_certificate
            )
            certs.append(loader(data))
        except ValueError:
            log.warning("skipping %s in the trust list: not a certificate", path)
    return certs


def _vouches(anchor: x509.Certificate, cert: x509.Certificate) -> bool:
    if anchor == cert:
        return True
    from cryptography.exceptions import InvalidSignature

    try:
        cert.verify_directly_issued_by(anchor)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
