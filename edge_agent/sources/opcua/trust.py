"""Whether to trust an OPC UA server's certificate: dates, trust list, CAs, first use, CRLs.

A certificate outside its validity dates is refused whatever the trust list
says (and never pinned). Otherwise it is trusted when the trust directory holds
it, or holds the CA that issued it. ``trust: first_use`` pins the first
certificate seen into an empty trust directory. A certificate refused as
unknown is kept in ``<trust>/rejected`` so an administrator can move it into
the list. With ``crl`` set, a certificate its issuer's revocation list names is
refused (revocation.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.errors import SourceError
from edge_agent.sources.opcua.certs import EXPIRY_WARNING
from edge_agent.sources.opcua.revocation import check_revoked

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
        SourceError: a certificate out of its dates, untrusted (naming the file to
            add to the trust list), or revoked.
    """
    from cryptography import x509

    folder = Path(config.trust_dir)
    cert = x509.load_der_x509_certificate(server_der)
    thumb = hashlib.sha1(server_der, usedforsecurity=False).hexdigest()
    what = f"{name}: server certificate {_who(cert, thumb)}"
    check_dates(cert, what, _RENEW_SERVER)
    _warn_expiring(cert, thumb, name)
    trusted = _load_trusted(folder)
    path = _chain(cert, trusted, _load_trusted(folder / "issuers"))
    if path is not None:
        _check_path(path, trusted, config.crl, what)
        return
    if config.trust == "first_use" and not trusted:
        check_revoked(cert, [], config.crl, what)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{thumb}.der").write_bytes(server_der)
        log.warning("%s: trusting server certificate %s on first use (pinned)", name, thumb)
        return
    rejected = folder / "rejected"
    rejected.mkdir(parents=True, exist_ok=True)
    (rejected / f"{thumb}.der").write_bytes(server_der)
    raise SourceError(
        f"{name}: server certificate {_who(cert, thumb)}{_issuer(cert)} is not trusted; "
        f"if it is the right server, move {rejected / (thumb + '.der')} into "
        f"{folder}" + (", or put the certificate of its CA there" if _issuer(cert) else "")
    )


_RENEW_SERVER = (
    "ask the server's administrator for a new certificate, or set this gateway's clock "
    "if it is wrong"
)

_warned: set[str] = set()  # thumbprints already warned about: once per certificate and process


def check_dates(
    cert: x509.Certificate, what: str, fix: str, now: dt.datetime | None = None
) -> None:
    """Refuse ``cert`` when ``now`` is outside its notBefore..notAfter.

    Args:
        cert: the certificate.
        what: how the message names it (``<source>: server certificate CN=...``).
        fix: what to do about it, the end of the message.
        now: the time to check (default: this clock).

    Raises:
        SourceError: one line naming the certificate, its dates and ``fix``.
    """
    now = now or dt.datetime.now(dt.UTC)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if start <= now <= end:
        return
    state = f"expired on {_day(end)}" if now > end else f"is not valid before {_day(start)}"
    raise SourceError(
        f"{what} {state} (valid {_day(start)} to {_day(end)}; now {_day(now)}); {fix}"
    )


def _warn_expiring(cert: x509.Certificate, thumb: str, name: str) -> None:
    """Warn once per certificate when it expires within :data:`EXPIRY_WARNING`."""
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    if left < EXPIRY_WARNING and thumb not in _warned:
        _warned.add(thumb)
        log.warning(
            "%s: server certificate %s expires on %s (in %d day(s)); "
            "ask the server's administrator for a new one",
            name,
            _who(cert, thumb),
            _day(cert.not_valid_after_utc),
            left.days,
        )


def _day(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _who(cert: x509.Certificate, thumb: str) -> str:
    return f"{cert.subject.rfc4514_string()} (sha1 {thumb})"


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


_MAX_DEPTH = 6  # intermediate CAs followed at most: real plants have one or two


def _chain(
    cert: x509.Certificate, trusted: list[x509.Certificate], issuers: list[x509.Certificate]
) -> list[x509.Certificate] | None:
    """``[cert, intermediate CAs..., trusted anchor]``, or None when no chain reaches the list.

    Intermediate CAs come from ``<trust_dir>/issuers``: they link a certificate to
    a trusted CA but are not trusted by themselves.
    """
    path = [cert]
    while len(path) <= _MAX_DEPTH:
        anchor = next((a for a in trusted if _vouches(a, path[-1])), None)
        if anchor is not None:
            return path if anchor == path[-1] else [*path, anchor]
        step = next((c for c in issuers if c not in path and _vouches(c, path[-1])), None)
        if step is None:
            return None
        path.append(step)
    return None


def _check_path(
    path: list[x509.Certificate], trusted: list[x509.Certificate], crl: str, what: str
) -> None:
    """The CAs of a chain: within their dates and path lengths; no link revoked.

    Raises:
        SourceError: naming the CA (or the certificate) at fault.
    """
    for depth, ca in enumerate(path[1:]):
        link = f"{what}: its CA {ca.subject.rfc4514_string()}"
        check_dates(ca, link, "renew that CA's certificate (and give it to this gateway)")
        limit = _path_length(ca)
        if limit is not None and depth > limit:
            raise SourceError(
                f"{link} allows {limit} intermediate CA(s) below it, the chain has {depth}; "
                "the CA certificates do not fit together, ask the server's administrator"
            )
    for cert in path[:-1] or path:  # the anchor itself is trusted, not checked against CRLs
        who = what if cert is path[0] else f"{what}: its CA {cert.subject.rfc4514_string()}"
        check_revoked(cert, [*trusted, *path], crl, who)


def _path_length(ca: x509.Certificate) -> int | None:
    """The pathLenConstraint of a CA certificate (None: no limit)."""
    from cryptography import x509

    try:
        return ca.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
    except x509.ExtensionNotFound:
        return None


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
