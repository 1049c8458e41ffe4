"""DNSSEC keys as BIND keeps them (``dnssec-keygen``): a ``K<zone>.+<alg>+<tag>``
pair of files, ``.key`` (the DNSKEY record) and ``.private`` (the private
key), for ECDSAP256SHA256 (algorithm 13) and ED25519 (15), the algorithms
RFC 8624 recommends.  Signing itself is `cryptography`'s (SPEC.md §8).

`ZoneKey` is one key: its public DNSKEY RDATA, key tag (RFC 4034 App. B),
DS digest (SHA-256, for the parent zone) and a ``sign`` function.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from typing import Any

from attrs import frozen
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ECDSAP256SHA256 = 13
ED25519 = 15
ALGORITHMS = {ECDSAP256SHA256: "ECDSAP256SHA256", ED25519: "ED25519"}
#: DNSKEY flags: a zone key that is also a secure entry point (a KSK: the DS
#: at the parent points at it).  One key signs everything (a CSK).
FLAGS = 257
PROTOCOL = 3


class KeyFileError(ValueError):
    """A key file that cannot be read or is not a key SkyDNS can use."""


def name_wire(name: str) -> bytes:
    """``name`` in canonical wire form (RFC 4034 §6.2): lower case labels."""
    out = b""
    for label in name.strip(".").lower().split("."):
        if label:
            data = label.encode("ascii")
            out += bytes([len(data)]) + data
    return out + b"\x00"


def key_tag(rdata: bytes) -> int:
    """RFC 4034 Appendix B."""
    total = 0
    for i, byte in enumerate(rdata):
        total += byte if i & 1 else byte << 8
    total += (total >> 16) & 0xFFFF
    return total & 0xFFFF


@frozen
class ZoneKey:
    """A zone's signing key."""

    zone: str
    algorithm: int
    public: bytes  # the DNSKEY's public key field
    _private: Any

    @property
    def dnskey_rdata(self) -> bytes:
        return struct.pack("!HBB", FLAGS, PROTOCOL, self.algorithm) + self.public

    @property
    def tag(self) -> int:
        return key_tag(self.dnskey_rdata)

    def ds_digest(self) -> bytes:
        """The SHA-256 digest of the DS record (RFC 4509)."""
        return hashlib.sha256(name_wire(self.zone) + self.dnskey_rdata).digest()

    def ds_text(self) -> str:
        """The DS record for the parent zone, as ``dnssec-dsfromkey -2`` prints it."""
        return (f"{self.zone.strip('.')}. IN DS {self.tag} {self.algorithm} 2 "
                f"{self.ds_digest().hex().upper()}")  # fmt: skip

    def dnskey_text(self) -> str:
        return (f"{self.zone.strip('.')}. IN DNSKEY {FLAGS} {PROTOCOL} {self.algorithm} "
                f"{base64.b64encode(self.public).decode()}")  # fmt: skip

    def sign(self, data: bytes) -> bytes:
        """The signature of ``data`` in the form RRSIG carries (RFC 6605 §4:
        r and s, 32 bytes each; RFC 8080: the Ed25519 signature)."""
        if self.algorithm == ED25519:
            signature: bytes = self._private.sign(data)
            return signature
        r, s = decode_dss_signature(self._private.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _public_of(algorithm: int, private: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    if algorithm == ED25519:
        raw: bytes = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return raw
    numbers = private.public_key().public_numbers()
    return numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


def _private_from(algorithm: int, secret: bytes) -> Any:
    if algorithm == ED25519:
        return ed25519.Ed25519PrivateKey.from_private_bytes(secret)
    return ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())


def load(path: str, zone: str) -> ZoneKey:
    """The key in BIND's ``.private`` file at ``path`` (or the ``.key`` file
    next to it, or the common ``K...`` prefix) for ``zone``."""
    base = path[: -len(".private")] if path.endswith(".private") else \
        path[: -len(".key")] if path.endswith(".key") else path  # fmt: skip
    try:
        with open(base + ".private") as f:
            fields = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    except OSError as e:
        raise KeyFileError(f"cannot read {base}.private: {e.strerror}") from None
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    try:
        algorithm = int(fields["Algorithm"].split()[0])
        secret = base64.b64decode(fields["PrivateKey"], validate=True)
    except (KeyError, ValueError):
        raise KeyFileError(f"{base}.private is not a BIND private key file") from None
    if algorithm not in ALGORITHMS:
        raise KeyFileError(f"{base}.private: algorithm {algorithm} is not supported "
                        f"(use ECDSAP256SHA256 or ED25519)")  # fmt: skip
    if len(secret) != 32:
        raise KeyFileError(f"{base}.private: the private key is not 32 bytes")
    private = _private_from(algorithm, secret)
    key = ZoneKey(zone, algorithm, _public_of(algorithm, private), private)
    _check_public_file(base + ".key", key)
    return key


def _check_public_file(path: str, key: ZoneKey) -> None:
    """The ``.key`` file, when there is one, must hold the same key."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        records = [line.split(";")[0].split() for line in f]
    for fields in records:
        if len(fields) >= 7 and fields[2].upper() == "DNSKEY":
            public = base64.b64decode("".join(fields[6:]))
            if public != key.public:
                raise KeyFileError(f"{path} does not hold the public half of its .private file")
            owner = fields[0].strip(".").lower()
            if owner != key.zone.strip(".").lower():
                raise KeyFileError(f"{path} is a key for {owner}, not for {key.zone}")


def generate(zone: str, algorithm: int, directory: str) -> tuple[ZoneKey, str]:
    """A new key for ``zone``, written as BIND's pair of files in
    ``directory`` (the ``.private`` one mode 0600); the key and the files'
    common path (``.../K<zone>.+<alg>+<tag>``)."""
    if algorithm == ED25519:
        private: Any = ed25519.Ed25519PrivateKey.generate()
        from cryptography.hazmat.primitives import serialization

        secret = private.private_bytes(serialization.Encoding.Raw,
                                       serialization.PrivateFormat.Raw,
                                       serialization.NoEncryption())  # fmt: skip
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        secret = private.private_numbers().private_value.to_bytes(32, "big")
    key = ZoneKey(zone, algorithm, _public_of(algorithm, private), private)
    base = os.path.join(directory, f"K{zone.strip('.').lower()}.+{algorithm:03d}+{key.tag:05d}")
    with open(base + ".key", "w") as f:
        f.write(f"; This is a key-signing key, keyid {key.tag}, for {zone.strip('.')}.\n")
        f.write(key.dnskey_text() + "\n")
    descriptor = os.open(base + ".private", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as f:
        f.write("Private-key-format: v1.3\n"
                f"Algorithm: {algorithm} ({ALGORITHMS[algorithm]})\n"
                f"PrivateKey: {base64.b64encode(secret).decode()}\n")  # fmt: skip
    return key, base
