"""`edge-agent opcua gen-cert`: the client's application instance certificate and key.

An OPC UA server checks that the ApplicationUri the client announces in
CreateSession is the URI in its certificate's subjectAltName; a mismatch is the
most common reason a secured connection is refused. So the certificate is made
here, from the same :func:`default_application_uri` the source uses.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path

EXPIRY_WARNING = dt.timedelta(days=30)
"""A certificate that expires sooner than this is warned about."""


def default_application_uri() -> str:
    """The ApplicationUri of this gateway's client: ``urn:<hostname>:edge-agent``."""
    return f"urn:{socket.gethostname()}:edge-agent"


def make_certificate(
    cert_path: Path,
    key_path: Path,
    application_uri: str,
    hostname: str,
    days: int = 3650,
    server: bool = False,
) -> None:
    """Write a self-signed OPC UA certificate (DER) and its RSA 2048 key (PEM).

    Args:
        cert_path: where the certificate goes (``.der``).
        key_path: where the private key goes (``.pem``, PKCS8, unencrypted, mode 0600).
        application_uri: the URI put in subjectAltName; must match the client's.
        hostname: DNS name put in subjectAltName.
        days: validity.
        server: make a server certificate (serverAuth) instead of a client one.
    """
    from asyncua.crypto import cert_gen
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = cert_gen.generate_private_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        application_uri,
        {},
        [x509.UniformResourceIdentifier(application_uri), x509.DNSName(hostname)],
        extended=[usage],
        days=days,
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 from the start: the key is never readable by others, even briefly.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(cert_gen.dump_private_key_as_pem(key))
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))


def date_problem(path: str, now: dt.datetime | None = None) -> str:
    """What is wrong with the validity dates of the certificate in ``path`` (empty: nothing).

    ``expired on ...``, ``is not valid before ...`` or ``expires on ... (in N day(s))``.
    A missing or unreadable file gives nothing: connecting says that in words.
    """
    from cryptography import x509

    try:
        data = Path(path).read_bytes()
        pem = b"-----BEGIN" in data
        cert = x509.load_pem_x509_certificate(data) if pem else x509.load_der_x509_certificate(data)
    except (OSError, ValueError):
        return ""
    now = now or dt.datetime.now(dt.UTC)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now > end:
        return f"expired on {end:%Y-%m-%d %H:%M} UTC"
    if now < start:
        return f"is not valid before {start:%Y-%m-%d %H:%M} UTC"
    if end - now < EXPIRY_WARNING:
        return f"expires on {end:%Y-%m-%d %H:%M} UTC (in {(end - now).days} day(s))"
    return ""
