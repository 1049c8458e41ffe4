"""Raft's persistent records: log entries and the hard state.

These are shared by the pure core (``skydns.raft.core``), the durable log
(``skydns.raft.log``) and the AMP transport, so their shape and byte encoding
live here, apart from all of them.  Messages between nodes are added here by
the core.
"""

from __future__ import annotations

import enum
import struct

from attrs import frozen


class EntryKind(enum.IntEnum):
    NORMAL = 0  # an application command (opaque bytes)
    NOOP = 1  # appended by a new leader (Raft §5.4.2, thesis §6.4)
    CONFIG = 2  # a membership change (seam for the membership issue)


@frozen
class Entry:
    term: int
    index: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""


@frozen
class HardState:
    """What must be on disk before a node answers anything (Raft Figure 2)."""

    term: int = 0
    vote: str | None = None
    commit: int = 0


_ENTRY_HEADER = struct.Struct(">QQBI")  # term, index, kind, len(data)


class EncodingError(ValueError):
    """Bytes that are not an encoded record."""


def encode_entry(entry: Entry) -> bytes:
    return _ENTRY_HEADER.pack(entry.term, entry.index, int(entry.kind), len(entry.data)) + entry.data


def decode_entry(data: bytes) -> Entry:
    if len(data) < _ENTRY_HEADER.size:
        raise EncodingError("entry shorter than its header")
    term, index, kind, length = _ENTRY_HEADER.unpack_from(data)
    if len(data) != _ENTRY_HEADER.size + length:
        raise EncodingError("entry length does not match its header")
    try:
        entry_kind = EntryKind(kind)
    except ValueError as e:
        raise EncodingError(f"unknown entry kind {kind}") from e
    return Entry(term, index, entry_kind, bytes(data[_ENTRY_HEADER.size :]))
