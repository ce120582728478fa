"""Fixtures of the forward tests: a real mosquitto on a free port, test certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Mosquitto:
    """A mosquitto process with its own config file; can be stopped and started again."""

    def __init__(self, folder: Path, port: int, extra: str = "", anonymous: bool = True) -> None:
        self.folder = folder
        self.port = port
        self.extra = extra
        self.anonymous = anonymous
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the broker and wait until it listens."""
        conf = self.folder / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"allow_anonymous {'true' if self.anonymous else 'false'}\n"
            "persistence true\n"
            f"persistence_location {self.folder}/\n"
            # When run as root mosquitto drops to this user; ourselves keeps files readable.
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
            "log_dest stderr\n"
            "max_queued_messages 0\n"
            f"{self.extra}"
        )
        log = (self.folder / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=log, stdout=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited: {(self.folder / 'mosquitto.log').read_text()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        """Stop the broker cleanly (it saves its persistent sessions)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None

    def reload(self) -> None:
        """Make the running broker read its password and ACL files again (SIGHUP)."""
        assert self.proc is not None and self.proc.poll() is None
        self.proc.send_signal(signal.SIGHUP)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A plain-TCP mosquitto on a free loopback port."""
    folder = tmp_path / "broker"
    folder.mkdir()
    folder.chmod(0o755)
    mosquitto = Mosquitto(folder, free_port())
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


@dataclass
class Certs:
    """Files of a test PKI: a CA, a server cert for localhost, a client cert, a stranger CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


Key = ec.EllipticCurvePrivateKey


def _cert(
    subject: str, key: Key, issuer: str, issuer_key: Key, ca: bool, san: bool = False
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(
    folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None
) -> None:
    (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.crt").chmod(0o644)
    if key is not None:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (folder / f"{name}.key").write_bytes(pem)
        # mosquitto drops root to its own user: the key must stay readable (test-only PKI).
        (folder / f"{name}.key").chmod(0o644)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A throw-away PKI made with the ``cryptography`` package."""
    folder = tmp_path_factory.mktemp("pki")
    folder.chmod(0o755)
    ca_key, other_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    _write(folder, "ca", _cert("Test CA", ca_key, "Test CA", ca_key, ca=True), None)
    _write(folder, "other", _cert("Other CA", other_key, "Other CA", other_key, ca=True), None)
    _write(
        folder, "server", _cert("localhost", server_key, "Test CA", ca_key, False, True), server_key
    )
    _write(folder, "client", _cert("gateway-1", client_key, "Test CA", ca_key, False), client_key)
    return Certs(
        ca=folder / "ca.crt",
        server_cert=folder / "server.crt",
        server_key=folder / "server.key",
        client_cert=folder / "client.crt",
        client_key=folder / "client.key",
        other_ca=folder / "other.crt",
    )


@pytest.fixture
def tls_broker(tmp_path: Path, certs: Certs) -> Iterator[Mosquitto]:
    """A mosquitto that speaks TLS only and requires a client certificate."""
    folder = tmp_path / "tls-broker"
    folder.mkdir()
    folder.chmod(0o755)
    extra = (
        f"cafile {certs.ca}\ncertfile {certs.server_cert}\nkeyfile {certs.server_key}\n"
        "require_certificate true\n"
    )
    mosquitto = Mosquitto(folder, free_port(), extra)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A mosquitto that requires user ``gateway`` with password ``s3cret``."""
    folder = tmp_path / "auth-broker"
    folder.mkdir()
    passwords = folder / "passwords"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), "gateway", "s3cret"],
        check=True,
        capture_output=True,
    )
    passwords.chmod(0o644)
    mosquitto = Mosquitto(folder, free_port(), f"password_file {passwords}\n", anonymous=False)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


# Anonymous clients (the tests' subscribers) read everything; user ``gateway`` may publish
# its status only, so every other publish of the sink is refused.
ACL_STATUS_ONLY = "topic read #\nuser gateway\ntopic readwrite edge-agent/+/status\n"
ACL_ALL = "topic read #\nuser gateway\ntopic readwrite #\n"


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A mosquitto where ``gateway``/``s3cret`` may publish on its status topic only.

    Write ``folder / "acl"`` and call ``reload()`` to change the rules.
    """
    folder = tmp_path / "acl-broker"
    folder.mkdir()
    passwords, acl = folder / "passwords", folder / "acl"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), "gateway", "s3cret"],
        check=True,
        capture_output=True,
    )
    passwords.chmod(0o644)
    acl.write_text(ACL_STATUS_ONLY)
    acl.chmod(0o644)
    # Debian's 2.0.11 (its CVE-2023-28366 patch) also drops a client after a refusal
    # when max_queued_messages is 0, as Mosquitto.start sets it: keep its default here.
    extra = f"password_file {passwords}\nacl_file {acl}\nmax_queued_messages 1000\nlog_type all\n"
    mosquitto = Mosquitto(folder, free_port(), extra)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()
