"""``edge-agent opcua gen-cert``: make the agent's OPC UA client certificate and key."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from edge_agent.sources.opcua.certs import default_application_uri, make_certificate


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
