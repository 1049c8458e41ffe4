"""The arguments of the Raft RPCs (`skydns.raft.net.wire`), which check their
ranges when parsed, so a box with values out of range fails to parse.

Every AMP value is at most 65,535 bytes.  Log entries travel in a
`ChunkedBytes` argument spread over as many keys as they need (``entries``,
``entries.1``, ...), so a batch of any size up to `MAX_CHUNKS` values
crosses the wire; the core also caps a batch (``max_size_per_msg``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from twisted.protocols import amp

from skydns.raft.core.messages import EncodingError, Entry, decode_entry, encode_entry

#: The most AMP values one `ChunkedBytes` argument may span (4 MiB).
MAX_CHUNKS = 64
#: The most proposals one `ForwardProposals` call carries.
MAX_FORWARD_BATCH = 1024
#: The most one AMP box may hold, keys and values together: well above the
#: largest box we send (a few arguments of `MAX_CHUNKS` values each).
MAX_BOX_BYTES = 16 * 1024 * 1024
_LIMIT = amp.MAX_VALUE_LENGTH
_MAX_INT = 2**63 - 1
_LENGTH = struct.Struct(">I")


class Natural(amp.Integer):
    """A term or an index: an integer in 0 .. 2**63 - 1."""

    def fromString(self, inString: bytes) -> int:  # type: ignore[override]
        value = int(inString)
        if not 0 <= value <= _MAX_INT:
            raise ValueError(f"{value} is out of range")
        return value


class NodeId(amp.Unicode):
    """A node id (one DNS label, so at most 63 characters)."""

    def fromString(self, inString: bytes) -> str:
        if not 0 < len(inString) <= 63:
            raise ValueError("a node id is 1 to 63 bytes")
        value: str = super().fromString(inString)
        return value


class ChunkedBytes(amp.Argument):
    """Bytes of any length up to `MAX_CHUNKS` AMP values, split over the
    keys ``name``, ``name.1``, ``name.2``, ..."""

    def toBox(self, name: bytes, strings: Any, objects: Any, proto: Any) -> None:
        data = self.to_bytes(objects.pop(amp._wireNameToPythonIdentifier(name)))
        chunks = [data[i : i + _LIMIT] for i in range(0, len(data), _LIMIT)] or [b""]
        if len(chunks) > MAX_CHUNKS:
            raise amp.TooLong(False, True, name, name)
        for number, chunk in enumerate(chunks):
            strings[_chunk_key(name, number)] = chunk

    def fromBox(self, name: bytes, strings: Any, objects: Any, proto: Any) -> None:
        chunks = [strings.pop(name)]
        while (key := _chunk_key(name, len(chunks))) in strings:
            if len(chunks) == MAX_CHUNKS:
                raise ValueError(f"{name!r} spans more than {MAX_CHUNKS} values")
            chunks.append(strings.pop(key))
        objects[amp._wireNameToPythonIdentifier(name)] = self.from_bytes(b"".join(chunks))

    def to_bytes(self, value: Any) -> bytes:
        return bytes(value)

    def from_bytes(self, data: bytes) -> Any:
        return data


def _chunk_key(name: bytes, number: int) -> bytes:
    return name if number == 0 else name + b".%d" % number


class EntriesArgument(ChunkedBytes):
    """A tuple of log entries, each length-prefixed in its encoding."""

    def to_bytes(self, value: Iterable[Entry]) -> bytes:
        parts = []
        for entry in value:
            encoded = encode_entry(entry)
            parts.append(_LENGTH.pack(len(encoded)))
            parts.append(encoded)
        return b"".join(parts)

    def from_bytes(self, data: bytes) -> tuple[Entry, ...]:
        entries = []
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            if offset + _LENGTH.size > len(view):
                raise EncodingError("truncated entry length")
            (length,) = _LENGTH.unpack_from(view, offset)
            offset += _LENGTH.size
            if offset + length > len(view):
                raise EncodingError("truncated entry")
            entries.append(decode_entry(bytes(view[offset : offset + length])))
            offset += length
        return tuple(entries)


class ProposalsArgument(ChunkedBytes):
    """A list of forwarded proposals (enveloped commands), length-prefixed."""

    def to_bytes(self, value: Iterable[bytes]) -> bytes:
        return b"".join(_LENGTH.pack(len(data)) + data for data in value)

    def from_bytes(self, data: bytes) -> list[bytes]:
        proposals: list[bytes] = []
        offset = 0
        while offset < len(data):
            if len(proposals) == MAX_FORWARD_BATCH:
                raise ValueError(f"more than {MAX_FORWARD_BATCH} proposals in one call")
            if offset + _LENGTH.size > len(data):
                raise ValueError("truncated proposal length")
            (length,) = _LENGTH.unpack_from(data, offset)
            offset += _LENGTH.size
            if offset + length > len(data):
                raise ValueError("truncated proposal")
            proposals.append(data[offset : offset + length])
            offset += length
        return proposals
