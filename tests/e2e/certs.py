"""Certificates for tests: a CA and leaves it signs, written as PEM files
(with the `cryptography` package, as docs/security.md does with openssl)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class Issued:
    """A key and its certificate, in memory and as PEM files."""

    def __init__(self, key: Any, cert: x509.Certificate, key_path: str, cert_path: str) -> None:
        self.key = key
        self.cert = cert
        self.key_path = key_path
        self.cert_path = cert_path


def issue(
    directory: str, name: str, ca: Issued | None = None, ip: str | None = "127.0.0.1"
) -> Issued:
    """A certificate for ``name`` (and ``ip`` in its subjectAltName), signed
    by ``ca``, or a self-signed CA when ``ca`` is None."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if ca is None else ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True)
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address(ip))]
            ),
            critical=False,
        )
    cert = builder.sign(key if ca is None else ca.key, hashes.SHA256())
    key_path = os.path.join(directory, f"{name}.key")
    cert_path = os.path.join(directory, f"{name}.crt")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))  # fmt: skip
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return Issued(key, cert, key_path, cert_path)
