"""Encoding an answer from the authority to wire bytes, fast.

`encode_answer` writes exactly the bytes `dns.Message.toStr` writes for the
same response (same name compression: every suffix of every name that
Twisted compresses is remembered by its exact bytes, and a later equal name
becomes a pointer; SRV targets are never compressed), for the record types
the authority produces: A, AAAA, SRV, SOA, NS, our OPT record, and
`WireRecord`s (built from instances, their RDATA already bytes).  It is
the direct path's encoder (`skydns.dns.server`); for any other payload it
raises `Unsupported` and the caller encodes with Twisted.  The fast-path
tests compare the two byte for byte.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Optional

from twisted.names import dns

from skydns.dns.records import WireRecord

_HEADER = struct.Struct("!H2B4H")
_RR = struct.Struct("!HHIH")
_SRV = struct.Struct("!HHH")
_SOA = struct.Struct("!LlllL")
_POINTER = struct.Struct("!H")
_TYPE_CLASS = struct.Struct("!HH")

_A = dns.Record_A
_AAAA = dns.Record_AAAA
_SRV_RECORD = dns.Record_SRV
_SOA_RECORD = dns.Record_SOA
_NS = dns.Record_NS
_OPT = dns._OPTHeader


_INF = float("inf")

#: Where each TTL that counts down to a lease's end sits in an encoded
#: message, and that end: ``(offset of the 4-byte TTL field, expires)``.
Ttls = list[tuple[int, float]]


class Unsupported(Exception):
    """A record this encoder does not write (encode with Twisted instead)."""


def _name(out: list[bytes], at: int, name: bytes, names: Optional[dict[bytes, int]]) -> int:
    """Append ``name`` as `dns.Name.encode` would; return the new offset."""
    while name:
        if names is not None:
            pointer = names.get(name)
            if pointer is not None:
                out.append(_POINTER.pack(0xC000 | pointer))
                return at + 2
            names[name] = at
        dot = name.find(b".")
        if dot > 0:
            label, name = name[:dot], name[dot + 1 :]
        else:
            label, name = name, b""
            dot = len(label)
        out.append(bytes((dot,)) + label)
        at += 1 + dot
    out.append(b"\x00")
    return at + 1


def _record(
    out: list[bytes], at: int, record: Any, names: dict[bytes, int], ttls: Optional[Ttls]
) -> int:
    """Append one resource record as `dns.RRHeader.encode` would (or, for
    a `WireRecord`, as the `dns.RRHeader` `to_header` makes of it would)."""
    if type(record) is WireRecord:
        name = record.name
        pointer = names.get(name)
        if pointer is not None:
            out.append(_POINTER.pack(0xC000 | pointer))
            at += 2
        else:
            at = _name(out, at, name, names)
        if ttls is not None and record.expires < _INF:
            ttls.append((at + 4, record.expires))
        rdata = record.rdata
        out.append(_RR.pack(record.type, 1, record.ttl, len(rdata)) + rdata)
        return at + 10 + len(rdata)
    if type(record) is _OPT:
        if record.options or record.name.name:
            raise Unsupported(record)
        ttl = record.extendedRCODE << 24 | record.version << 16 | record.dnssecOK << 15
        out.append(b"\x00" + _RR.pack(dns.OPT, record.udpPayloadSize, ttl, 0))
        return at + 11
    at = _name(out, at, record.name.name, names)
    payload = record.payload
    kind = type(payload)
    fixed = len(out)
    out.append(b"")  # type, class, TTL and length: filled in below
    at += 10
    start = at
    if kind is _A or kind is _AAAA:
        out.append(payload.address)
        at += len(payload.address)
    elif kind is _SRV_RECORD:
        out.append(_SRV.pack(payload.priority, payload.weight, payload.port))
        at = _name(out, at + 6, payload.target.name, None)
    elif kind is _SOA_RECORD:
        at = _name(out, at, payload.mname.name, names)
        at = _name(out, at, payload.rname.name, names)
        out.append(
            _SOA.pack(
                payload.serial, payload.refresh, payload.retry, payload.expire, payload.minimum
            )
        )
        at += 20
    elif kind is _NS:
        at = _name(out, at, payload.name.name, names)
    else:
        raise Unsupported(record)
    out[fixed] = _RR.pack(record.type, record.cls, record.ttl, at - start)
    return at


#: `_question_names` results, by name (cleared when full).
_QUESTION_NAMES: dict[bytes, dict[bytes, int]] = {}
_QUESTION_NAMES_SIZE = 16384


def _question_names(name: bytes) -> dict[bytes, int]:
    """Where each suffix of the question name ``name`` starts in a message
    (the question is right after the 12-byte header), remembered."""
    names: dict[bytes, int] = {}
    at = 12
    rest = name
    while rest:
        names[rest] = at
        dot = rest.find(b".")
        if dot <= 0:
            break
        at += 1 + dot
        rest = rest[dot + 1 :]
    if len(_QUESTION_NAMES) >= _QUESTION_NAMES_SIZE:
        _QUESTION_NAMES.clear()
    _QUESTION_NAMES[name] = names
    return names


def encode_answer(
    ident: int,
    question: bytes,
    name: bytes,
    flags: int,
    flags2: int,
    answers: Sequence[Any],
    authority: Sequence[Any],
    additional: Sequence[Any],
    limit: int,
    ttls: Optional[Ttls] = None,
) -> bytes:
    """The response, as `skydns.dns.server.encode_reply` would encode it.

    ``question`` is the question section's bytes, ``name`` the (dotted,
    lower-case) name it holds, as the encoder registers it for compression;
    ``flags`` the first flags byte without AA (QR, opcode, RD), AA is set
    when a record in the answer or authority section is authoritative;
    ``flags2`` the second (RA, RCODE).  Over
    ``limit`` bytes: the header and question alone, with TC set, and the
    OPT record if there is one.  With a ``ttls`` list, the place of every
    TTL taken from a lease is appended to it (`Ttls`; nothing for a TC
    answer), so that a cache can bring the TTLs up to date later.
    """
    known = _QUESTION_NAMES.get(name)
    if known is None:
        known = _question_names(name)
    names = known.copy()
    out: list[bytes] = [b"", question]
    append = out.append
    at = 12 + len(question)
    authoritative = False
    for section in (answers, authority):
        for record in section:
            if type(record) is WireRecord:
                authoritative = True
                # Inline `_record` for the common case: the owner is the
                # question name (a pointer to offset 12) or known.
                pointer = names.get(record.name)
                rdata = record.rdata
                if pointer is not None:
                    append(
                        _POINTER.pack(0xC000 | pointer)
                        + _RR.pack(record.type, 1, record.ttl, len(rdata))
                        + rdata
                    )
                    if ttls is not None and record.expires < _INF:
                        ttls.append((at + 6, record.expires))
                    at += 12 + len(rdata)
                    continue
            elif record.auth:
                authoritative = True
            at = _record(out, at, record, names, ttls)
    for record in additional:
        at = _record(out, at, record, names, ttls)
    if authoritative:
        flags |= 0x04
    if at > limit:
        options = [r for r in additional if type(r) is _OPT]
        out = [b"", question]
        for record in options:
            _record(out, 0, record, names, None)
        if ttls is not None:
            del ttls[:]
        counts = (1, 0, 0, len(options))
        flags |= 0x02
    else:
        counts = (1, len(answers), len(authority), len(additional))
    out[0] = _HEADER.pack(ident, flags, flags2, *counts)
    return b"".join(out)
