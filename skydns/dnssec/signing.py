"""Signing RRsets online (RFC 4034, RFC 6605, RFC 8080) and denying existence
compactly (RFC 9824): the wire-level pieces the DNS side builds signed
answers from (SPEC.md §8).

Everything here works on RDATA bytes in canonical form (RFC 4034 §6.2:
names in RDATA lower case, uncompressed), so it does not depend on how an
answer is later encoded.  Signatures start an hour in the past (clock skew)
and last `VALIDITY` days; a signed answer kept in a cache is to be signed
again once less than `RESIGN_BEFORE` of that is left (`skydns.dnssec.signer`
puts these pieces into answers).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from skydns.dnssec.keys import ZoneKey, name_wire

RRSIG = 46
NSEC = 47
DNSKEY = 48
#: RFC 9824 §2: the pseudo-type a compact denial's NSEC shows for a name
#: that does not exist.
NXNAME = 128
#: Seconds a signature starts before it is made (clock skew between us and
#: validators).
INCEPTION_SKEW = 3600
#: Days a signature is valid.
VALIDITY = 7
#: Sign again when less than this much of a signature's validity is left.
RESIGN_BEFORE = 2 * 86400


def label_count(owner: str) -> int:
    """RRSIG's Labels field: the owner's labels, not the root, not a
    leading ``*`` (RFC 4034 §3.1.3)."""
    labels = [label for label in owner.strip(".").split(".") if label]
    return len(labels) - (1 if labels and labels[0] == "*" else 0)


def rrsig_rdata(key: ZoneKey, owner: str, rtype: int, ttl: int, rdatas: Sequence[bytes],
                now: float) -> bytes:  # fmt: skip
    """The RDATA of the RRSIG over the RRset (``owner``, ``rtype``, class
    IN, ``ttl``) with ``rdatas`` (canonical), signed at ``now``."""
    inception = int(now) - INCEPTION_SKEW
    expiration = int(now) + VALIDITY * 86400
    head = struct.pack("!HBBIIIH", rtype, key.algorithm, label_count(owner), ttl,
                       expiration & 0xFFFFFFFF, inception & 0xFFFFFFFF, key.tag)  # fmt: skip
    head += name_wire(key.zone)
    owner_wire = name_wire(owner)
    signed = head + b"".join(
        owner_wire + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata
        for rdata in sorted(set(rdatas))  # canonical order, duplicates dropped (§6.3)
    )
    return head + key.sign(signed)


def type_bitmap(types: Iterable[int]) -> bytes:
    """NSEC's Type Bit Maps field (RFC 4034 §4.1.2)."""
    windows: dict[int, bytearray] = {}
    for rtype in sorted(set(types)):
        window, low = divmod(rtype, 256)
        bits = windows.setdefault(window, bytearray())
        index = low // 8
        if len(bits) <= index:
            bits.extend(b"\x00" * (index + 1 - len(bits)))
        bits[index] |= 0x80 >> (low % 8)
    return b"".join(bytes([w, len(b)]) + bytes(b) for w, b in sorted(windows.items()))


def compact_nsec(owner: str, types: Iterable[int]) -> bytes:
    """The RDATA of a compact-denial NSEC at ``owner`` (RFC 9824): next name
    ``\\000.<owner>``, the types that exist there and RRSIG and NSEC; for
    a name that does not exist, ``types`` is just `NXNAME`."""
    next_name = b"\x01\x00" + name_wire(owner)
    return next_name + type_bitmap([*types, RRSIG, NSEC])


def canonical_name_rdata(name: str) -> bytes:
    """The canonical RDATA of a record that is one name (NS, PTR, CNAME)."""
    return name_wire(name)


def canonical_srv(priority: int, weight: int, port: int, target: str) -> bytes:
    return struct.pack("!HHH", priority, weight, port) + name_wire(target)


def canonical_soa(mname: str, rname: str, serial: int, refresh: int, retry: int,
                  expire: int, minimum: int) -> bytes:  # fmt: skip
    return name_wire(mname) + name_wire(rname) + struct.pack(
        "!IIIII", serial, refresh, retry, expire, minimum)  # fmt: skip
