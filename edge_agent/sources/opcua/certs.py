"""`edge-agent opcua gen-cert`: the client's application instance certificate and key.

An OPC UA server checks that the ApplicationUri the client announces in
CreateSession is the URI in its certificate's subjectAltName; a mismatch is the
most common reason a secured connection is refused. So the certificate is made
here, from the same :func:`default_application_uri` the source uses.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


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
