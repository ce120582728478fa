"""Certificates for the OPC UA tests: a test CA, the server's (issued by it), clients', users'.

Made once per test session (about 0.1 s each). Certificates are DER, keys PEM.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge_agent.sources.opcua.certs import make_certificate

SERVER_URI = "urn:edge-agent:test-server"
CLIENT_URI = "urn:edge-agent:test-client"


@dataclass(frozen=True)
class Authority:
    """A certificate authority that issues server certificates."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    @classmethod
    def make(cls, name: str, path_length: int | None = 0) -> Authority:
        """A self-signed CA certificate (CA:TRUE, keyCertSign)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self_signed = cls(
            _builder(subject, subject, key.public_key()).sign(key, hashes.SHA256()), key
        )
        return cls(self_signed.certify(self_signed, path_length=path_length), key)

    def issue_ca(self, name: str) -> Authority:
        """An intermediate CA, certified by this one."""
        intermediate = Authority.make(name)
        return Authority(self.certify(intermediate), intermediate.key)

    def certify(
        self,
        other: Authority,
        days: tuple[float, float] = (-1, 365),
        path_length: int | None = 0,
    ) -> x509.Certificate:
        """A CA certificate for ``other``'s name and key, signed by this CA."""
        return (
            _builder(other.cert.subject, self.cert.subject, other.key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def issue_server(
        self, cert_path: Path, key_path: Path, uri: str, days: tuple[float, float] = (-1, 365)
    ) -> x509.Certificate:
        """Write a server certificate for ``uri`` signed by this CA, and its key.

        ``days``: notBefore and notAfter, in days from now.
        """
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test server")])
        san = [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost")]
        cert = (
            _builder(subject, self.cert.subject, key.public_key(), days)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_path.write_bytes(cert.public_bytes(Encoding.DER))
        key_path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        return cert

    def revoke(self, serials: list[int], path: Path, pem: bool = False, due: float = 7) -> Path:
        """Write this CA's CRL naming ``serials`` (DER, or PEM), next update in ``due`` days."""
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now + dt.timedelta(days=min(due, 0) - 1))
            .next_update(now + dt.timedelta(days=due))
        )
        for serial in serials:
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - dt.timedelta(minutes=30))
                .build()
            )
            builder = builder.add_revoked_certificate(revoked)
        crl = builder.sign(self.key, hashes.SHA256())
        path.write_bytes(crl.public_bytes(Encoding.PEM if pem else Encoding.DER))
        return path

    def write_without_ca_flag(self, path: Path) -> Path:
        """This CA's name and key in a certificate marked CA:FALSE (it must vouch for nothing)."""
        cert = (
            _builder(self.cert.subject, self.cert.subject, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        path.write_bytes(cert.public_bytes(Encoding.DER))
        return path

    def write(self, path: Path, cert: x509.Certificate | None = None) -> Path:
        """The CA certificate (or ``cert``) as a PEM file (as administrators hand them out)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((cert or self.cert).public_bytes(Encoding.PEM))
        return path


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public: rsa.RSAPublicKey,
    days: tuple[float, float] = (-1, 365),
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
    )


def self_signed_client(cert_path: Path, key_path: Path, days: tuple[float, float]) -> Path:
    """Write a client certificate for CLIENT_URI valid ``days`` (from, to) from now, and its key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dated client")])
    san = [x509.UniformResourceIdentifier(CLIENT_URI), x509.DNSName("localhost")]
    cert = (
        _builder(name, name, key.public_key(), days)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    key_path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return cert_path


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=not ca,
        key_encipherment=not ca,
        data_encipherment=not ca,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def encrypt_key(plain: Path, encrypted: Path, password: str) -> Path:
    """Write ``plain`` (a PEM key) again, encrypted with ``password`` (PKCS8, best available)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(plain.read_bytes(), None)
    encryption = BestAvailableEncryption(password.encode())
    encrypted.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption))
    return encrypted


@dataclass(frozen=True)
class Pki:
    """Certificates for one test session (paths; DER certs, PEM keys)."""

    root: Path
    ca: Authority  # issued server_cert
    server_cert: Path
    server_key: Path
    client_cert: Path  # trusted by the server
    client_key: Path
    rogue_cert: Path  # not trusted by the server
    rogue_key: Path
    user_cert: Path  # an X.509 user identity the server knows
    user_key: Path

    @classmethod
    def make(cls, root: Path) -> Pki:
        """Generate every certificate."""
        paths = {}
        for name, uri in (
            ("client", CLIENT_URI),
            ("rogue", CLIENT_URI),
            ("user", "urn:edge-agent:test-user"),
        ):
            cert, key = root / f"{name}.der", root / f"{name}.key.pem"
            make_certificate(cert, key, uri, "localhost", days=365)
            paths[f"{name}_cert"], paths[f"{name}_key"] = cert, key
        ca = Authority.make("edge-agent test CA")
        server_cert, server_key = root / "server.der", root / "server.key.pem"
        ca.issue_server(server_cert, server_key, SERVER_URI)
        return cls(root=root, ca=ca, server_cert=server_cert, server_key=server_key, **paths)

    def trust_dir(self, name: str) -> Path:
        """A fresh client trust directory holding the server's certificate."""
        folder = self.root / f"trust-{name}"
        folder.mkdir()
        (folder / "server.der").write_bytes(self.server_cert.read_bytes())
        return folder
