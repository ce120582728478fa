"""`edge-agent opcua gen-cert`: the client's application instance certificate and key.

An OPC UA server checks that the ApplicationUri the client announces in
CreateSession is the URI in its certificate's subjectAltName; a mismatch is the
most common reason a secured connection is refused. So the certificate is made
here, from the same :func:`default_application_uri` the source uses.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
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


def _gen_cert(args: argparse.Namespace) -> int:
    cert, key = Path(args.cert), Path(args.key)
    existing = [str(p) for p in (cert, key) if p.exists()]
    if existing and not args.force:
        print(f"refusing to overwrite {', '.join(existing)} (use --force)", file=sys.stderr)
        return 1
    uri = args.application_uri or default_application_uri()
    make_certificate(cert, key, uri, args.hostname, days=args.days)
    print(f"wrote {cert} and {key} for application URI {uri}")
    print(f"give {cert} to the server's administrator to put in its trusted list")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``opcua gen-cert`` to the CLI."""
    opcua = subparsers.add_parser("opcua", help="OPC UA tools")
    commands = opcua.add_subparsers(dest="opcua_command", required=True)
    gen = commands.add_parser(
        "gen-cert", help="make the client certificate and key (self-signed, DER + PEM)"
    )
    gen.add_argument("--cert", default="opcua-client.der", help="certificate file (DER)")
    gen.add_argument("--key", default="opcua-client.key.pem", help="private key file (PEM)")
    gen.add_argument(
        "--application-uri",
        default="",
        help="must equal the source's application_uri (default urn:<hostname>:edge-agent)",
    )
    gen.add_argument("--hostname", default=socket.gethostname(), help="DNS name in the cert")
    gen.add_argument("--days", type=int, default=3650, help="validity in days")
    gen.add_argument("--force", action="store_true", help="overwrite existing files")
    gen.set_defaults(func=_gen_cert)
