"""Whether to trust an OPC UA server's certificate: the trust list, its CAs, first use.

A certificate is trusted when the trust directory holds it, or holds the CA
that issued it. ``trust: first_use`` pins the first certificate seen into an
empty trust directory. A refused certificate is kept in ``<trust>/rejected`` so
an administrator can move it into the list.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.errors import SourceError

if TYPE_CHECKING:
    from cryptography import x509

    from edge_agent.sources.opcua.config import OpcuaSecurityConfig

log = logging.getLogger(__name__)


def first_certificate(der: bytes) -> bytes:
    """The leaf certificate of a DER chain (or the certificate itself)."""
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

    folder = Path(config.trust_dir)
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
        f"{name}: server certificate {cert.subject.rfc4514_string()} (sha1 {thumb}){_issuer(cert)}"
        f" is not trusted; if it is the right server, move {rejected / (thumb + '.der')} into "
        f"{folder}" + (", or put the certificate of its CA there" if _issuer(cert) else "")
    )


def _issuer(cert: x509.Certificate) -> str:
    """`` issued by <CA>`` for a CA-issued certificate; empty for a self-signed one."""
    if cert.issuer == cert.subject:
        return ""
    return f" issued by {cert.issuer.rfc4514_string()}"


def _load_trusted(folder: Path) -> list[x509.Certificate]:
    from cryptography import x509

    certs = []
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        data = path.read_bytes() if path.suffix.lower() in (".der", ".pem", ".crt", ".cer") else b""
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
    """``cert`` is ``anchor``, or ``anchor`` is a CA that signed it."""
    if anchor == cert:
        return True
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    try:
        if not anchor.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False  # a plain server certificate in the list vouches for itself only
    except x509.ExtensionNotFound:
        return False

    try:
        cert.verify_directly_issued_by(anchor)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
