"""OPC UA security: secure channel policy and mode, user identity, keys and passwords.

The server's certificate is taken from its endpoint list and checked against
our trust list (opcua_trust.py) *before* the secure channel is opened, so an
unknown server is refused with a message that names the certificate to trust,
instead of failing deep inside the handshake. Certificates and keys are loaded
here, PEM or DER by their content, keys decrypted with their password, so a
wrong password or a missing one is said in words.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.errors import SourceError
from edge_agent.schema import Secret
from edge_agent.sources.opcua.trust import check_dates, check_trust, first_certificate

if TYPE_CHECKING:
    from asyncua.client.client import Client
    from asyncua.ua.uaprotocol_auto import EndpointDescription
from edge_agent.sources.opcua.config import Mode, OpcuaAuthConfig, OpcuaSecurityConfig

log = logging.getLogger(__name__)

RENEW_OWN = (
    "make a new one (`edge-agent opcua gen-cert`) and have the server trust it, "
    "or set this gateway's clock if it is wrong"
)


_POLICY_CLASSES = {
    "Basic256Sha256": "SecurityPolicyBasic256Sha256",
    "Aes128_Sha256_RsaOaep": "SecurityPolicyAes128Sha256RsaOaep",
    "Aes256_Sha256_RsaPss": "SecurityPolicyAes256Sha256RsaPss",
}


async def apply_security(client: Client, config: OpcuaSecurityConfig, name: str) -> None:
    """Set the channel's policy and mode on ``client``, after checking the server's certificate.

    Raises:
        SourceError: no matching endpoint, an untrusted server, or unreadable files.
    """
    if config.policy == "None":
        return
    from asyncua.crypto import security_policies
    from asyncua.crypto.uacrypto import CertProperties

    policy = getattr(security_policies, _POLICY_CLASSES[config.policy])
    endpoint = await _endpoint(client, policy.URI, config, name)
    server_der = first_certificate(endpoint.ServerCertificate)
    await asyncio.to_thread(check_trust, server_der, config, name)
    cert, key = await asyncio.to_thread(
        _identity, config.cert_file, config.key_file, config.key_password, name
    )
    await client.set_security(
        policy,
        CertProperties(cert, "der"),
        CertProperties(key, "der"),
        server_certificate=server_der,
        mode=_mode(config.mode),
    )


async def apply_auth(client: Client, config: OpcuaAuthConfig, name: str) -> None:
    """Set the user identity on ``client``.

    Raises:
        SourceError: unreadable password, certificate or key files.
    """
    if config.type == "username":
        client.set_user(config.username)
        if config.password_file:
            client.set_password(await asyncio.to_thread(_read_password, config.password_file, name))
        elif config.password is not None:
            client.set_password(config.password.get_secret_value())
    elif config.type == "certificate":
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import load_der_private_key

        cert, key = await asyncio.to_thread(
            _identity, config.cert_file, config.key_file, config.key_password, name
        )
        client.user_certificate = x509.load_der_x509_certificate(cert)
        client.user_private_key = load_der_private_key(key, None)


def _read_password(path: str, name: str) -> str:
    """The password in ``path``, without its line end; never logged.

    Raises:
        SourceError: a missing, unreadable or empty file (named; its content never shown).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SourceError(f"{name}: cannot read password_file {path}: {reason}") from None
    password = text.removesuffix("\n").removesuffix("\r")
    if not password:
        raise SourceError(f"{name}: password_file {path} is empty")
    return password


def _identity(
    cert_path: str, key_path: str, password: Secret | None, name: str
) -> tuple[bytes, bytes]:
    """A certificate and its private key as DER bytes, PEM or DER, the key encrypted or not.

    Loaded here rather than by asyncua, which guesses the format from the file
    name (a PEM key named ``.key`` fails) and reports a wrong password as a bare
    ValueError.

    Raises:
        SourceError: a missing file, not a certificate, a certificate out of its
            validity dates, or a key it cannot decrypt.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization as ser

    data = Path(_existing(cert_path, "cert_file", name)).read_bytes()
    try:
        pem = b"-----BEGIN" in data
        cert = x509.load_pem_x509_certificate(data) if pem else x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise SourceError(f"{name}: {cert_path} is not a certificate (PEM or DER): {exc}") from exc
    check_dates(cert, f"{name}: our certificate {cert_path}", RENEW_OWN)
    key = _private_key(key_path, password, name)
    der = key.private_bytes(ser.Encoding.DER, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    return cert.public_bytes(ser.Encoding.DER), der


def _private_key(path: str, password: Secret | None, name: str) -> Any:
    from cryptography.hazmat.primitives import serialization as ser

    data = Path(_existing(path, "key_file", name)).read_bytes()
    secret = password.get_secret_value().encode() if password is not None else None
    loader = ser.load_pem_private_key if b"-----BEGIN" in data else ser.load_der_private_key
    try:
        return loader(data, secret)
    except TypeError as exc:  # cryptography: encrypted without a password, or the reverse
        fix = "set key_password" if secret is None else "remove key_password"
        raise SourceError(f"{name}: key_file {path}: {exc}; {fix}") from exc
    except ValueError as exc:
        raise SourceError(
            f"{name}: cannot load key_file {path}: a wrong key_password, "
            f"or not a private key ({exc})"
        ) from exc


def _mode(mode: Mode) -> Any:
    from asyncua import ua

    return getattr(ua.MessageSecurityMode, mode)


def _existing(path: str, key: str, name: str) -> str:
    if not Path(path).is_file():
        raise SourceError(f"{name}: {key} {path} not found")
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
