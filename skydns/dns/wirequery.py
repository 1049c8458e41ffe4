"""Reading the question of a DNS request straight from its bytes, for the
answer cache (`skydns.dns.answercache`) and the direct path.

`parse_query` decides whether a request may be cached at all: one
question, standard query, no answer or authority records, at most an OPT
record (version 0, the flags clear but DO, well-formed options),
nothing after it, plain labels (no compression pointer, no ``.`` or NUL
byte inside a label).  Everything else takes the full path, uncached.
"""

from __future__ import annotations

import struct
from typing import NamedTuple, Optional

_HEADER = struct.Struct("!HH")
_OPT = struct.Struct("!HHBBHH")
_OPT_TYPE = 41
_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00"
_MIN_UDP_PAYLOAD = 512
#: The largest UDP answer unless told otherwise (`skydns.dns.protocols.DEFAULT_MAX_UDP`).
DEFAULT_UDP_LIMIT = 1232


class Query(NamedTuple):
    """What `parse_query` read from a cacheable request."""

    #: The cache key: the request after the ID, lower-cased.
    key: bytes
    #: The question name, lower-cased, dotted, without the final dot.
    name: bytes
    qtype: int
    qclass: int
    #: Where the question section ends (header + name + type + class).
    question_end: int
    #: Whether the request has an OPT record (the response then gets one).
    edns: bool
    #: The UDP payload size the client accepts (512 without EDNS).
    udp_limit: int
    #: The RD flag, which the response copies.
    recursion_desired: bool
    #: The question section with the name lower-cased.
    question: bytes
    #: The second flags byte (RA, Z, AD, CD, RCODE), as sent.
    flags: int
    #: The bytes from the end of the name (its 0 label) on, as sent.
    tail: bytes
    #: The DO bit (RFC 3225): the client wants DNSSEC records.
    dnssec_ok: bool = False


def parse_query(data: bytes, max_udp: int = DEFAULT_UDP_LIMIT) -> Optional[Query]:
    """The question of a plain, cacheable DNS query, read from its bytes
    alone; None for anything else (see the module docstring).  Never raises
    for any input."""
    size = len(data)
    if size < 17 or data[2] & 0xF8 or data[4:10] != _ONE_QUESTION:
        return None  # short, a response (QR), an opcode other than QUERY, counts
    additional = data[10] << 8 | data[11]
    if additional > 1:
        return None
    labels = []
    at = 12
    while True:
        length = data[at]
        if length == 0:
            break
        if length > 63:
            return None  # a compression pointer or a reserved label type
        label = data[at + 1 : at + 1 + length]
        if len(label) != length or b"." in label or b"\x00" in label:
            return None
        labels.append(label)
        at += 1 + length
        if at >= size:
            return None
    name_end = at
    if name_end - 12 + 1 > 255:
        return None  # RFC 1035 §3.1: at most 255 octets
    question_end = name_end + 5
    if question_end > size:
        return None
    qtype, qclass = _HEADER.unpack_from(data, name_end + 1)
    edns = dnssec_ok = False
    limit = _MIN_UDP_PAYLOAD
    if additional:
        if size < question_end + 11 or data[question_end] != 0:
            return None
        rtype, payload, extended, version, flags, rdlength = _OPT.unpack_from(
            data, question_end + 1
        )
        if rtype != _OPT_TYPE or extended or version or flags & 0x7FFF:
            return None  # not OPT, or an EDNS version, rcode or flag we do not handle
        at = question_end + 11
        end = at + rdlength
        if end != size:
            return None
        while at < end:
            if at + 4 > end:
                return None
            at += 4 + (data[at + 2] << 8 | data[at + 3])
        if at != end:
            return None
        edns = True
        dnssec_ok = bool(flags & 0x8000)
        limit = max(_MIN_UDP_PAYLOAD, min(payload, max_udp))
    elif question_end != size:
        return None
    key = data[2:].lower()
    return Query(
        key=key,
        name=b".".join(labels).lower(),
        qtype=qtype,
        qclass=qclass,
        question_end=question_end,
        edns=edns,
        udp_limit=limit,
        recursion_desired=bool(data[2] & 0x01),
        question=lower_question(data, question_end),
        flags=data[3],
        tail=data[name_end:],
        dnssec_ok=dnssec_ok,
    )


def lower_question(message: bytes, question_end: int) -> bytes:
    """The question section of ``message`` with its name lower-cased (and
    its type and class as they are)."""
    return message[12 : question_end - 4].lower() + message[question_end - 4 : question_end]


def restore_question(response: bytes, question: bytes) -> bytes:
    """``response`` with its question section (right after the 12-byte
    header) replaced by ``question``, the client's own bytes of the same
    length."""
    return response[:12] + question + response[12 + len(question) :]


def question_end(wire: bytes) -> int:
    """The offset just past the question of ``wire`` (a DNS message with
    one question), or 0 when it has no such question."""
    size = len(wire)
    if size < 17 or wire[4:6] != b"\x00\x01":
        return 0
    at = 12
    while True:
        length = wire[at]
        if length == 0:
            break
        if length > 63:
            return 0  # a question's name is never compressed in practice
        at += 1 + length
        if at >= size:
            return 0
    end = at + 5
    return end if end <= size else 0
