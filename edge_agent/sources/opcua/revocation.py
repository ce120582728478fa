"""Certificate revocation lists (CRLs) for OPC UA server certificates.

``security.crl`` names a CRL file or a directory of them, DER or PEM (a PEM
file may hold several). A CRL counts only when a trusted CA signed it (or the
certificate itself, for a self-signed one): anyone can write a file that names a
serial number. The files are read at every connect, so a new CRL dropped in by
the administrator takes effect at the next reconnect.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.errors import SourceError

if TYPE_CHECKING:
    from cryptography import x509

log = logging.getLogger(__name__)

_warned: set[tuple[str, str]] = set()  # (file, problem) already warned about in this process
_PEM_CRL = b"-----BEGIN X509 CRL-----"


def check_revoked(
    cert: x509.Certificate, anchors: list[x509.Certificate], crl: str, what: str
) -> None:
    """Refuse ``cert`` when a CRL signed by its issuer lists its serial number.

    Args:
        cert: the server certificate.
        anchors: the trusted certificates (the issuer's public key is taken from them).
        crl: the configured CRL file or directory (empty: no revocation check).
        what: how the message names the certificate.

    Raises:
        SourceError: the certificate is revoked, or ``crl`` does not exist.
    """
    if not crl:
        return
    issuers = [a for a in [*anchors, cert] if a.subject == cert.issuer]
    for path, revocations in _load(Path(crl), what):
        if revocations.issuer != cert.issuer or not _signed_by(revocations, issuers, path):
            continue
        _warn_stale(revocations, path)
        entry = revocations.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is not None:
            raise SourceError(
                f"{what} is revoked (since {entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC, "
                f"by {path}); ask the server's administrator for a new certificate"
            )


def _load(where: Path, what: str) -> list[tuple[Path, x509.CertificateRevocationList]]:
    """Every CRL in ``where`` (a file or a directory); unreadable files are warned about."""
    if where.is_dir():
        files = sorted(p for p in where.iterdir() if p.is_file())
    elif where.is_file():
        files = [where]
    else:
        raise SourceError(f"{what}: crl {where} not found; revocation cannot be checked")
    found = []
    for path in files:
        found += [(path, crl) for crl in _parse(path)]
    return found


def _parse(path: Path) -> list[x509.CertificateRevocationList]:
    from cryptography import x509

    data = path.read_bytes()
    try:
        if _PEM_CRL not in data:
            return [x509.load_der_x509_crl(data)]
        blocks = data.split(_PEM_CRL)[1:]
        return [x509.load_pem_x509_crl(_PEM_CRL + block) for block in blocks]
    except ValueError:
        _warn_once(path, "not a CRL", "skipping %s in crl: not a CRL (DER or PEM)", path)
        return []


def _signed_by(
    crl: x509.CertificateRevocationList, issuers: list[x509.Certificate], path: Path
) -> bool:
    for issuer in issuers:
        try:
            if crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                return True
        except TypeError:  # a key type CRLs cannot be checked with
            continue
    _warn_once(
        path,
        "unsigned",
        "ignoring CRL %s of %s: not signed by a trusted CA",
        path,
        crl.issuer.rfc4514_string(),
    )
    return False


def _warn_stale(crl: x509.CertificateRevocationList, path: Path) -> None:
    # Still used: a stale list still names what was revoked; the warning asks for a fresh one.
    due = crl.next_update_utc
    if due is not None and due < dt.datetime.now(dt.UTC):
        _warn_once(
            path,
            "stale",
            "CRL %s was due for renewal on %s; put the CA's current CRL there",
            path,
            f"{due:%Y-%m-%d %H:%M} UTC",
        )


def _warn_once(path: Path, problem: str, message: str, *args: object) -> None:
    if (str(path), problem) not in _warned:
        _warned.add((str(path), problem))
        log.warning(message, *args)
