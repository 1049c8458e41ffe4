"""Streaming a snapshot to a follower: chunks and their reassembly.

A snapshot is far bigger than one AMP value (65,535 bytes), so the leader
streams it as a series of `InstallSnapshot` messages whose ``data`` is a
chunk (`frame_chunks`): a header with the snapshot's total length, the
chunk's offset and a CRC-32 of the whole snapshot, then up to `CHUNK_SIZE`
bytes (the AMP layer spreads each chunk over several values).  The
follower's `Assembler` accepts the chunks of one (leader, term, index) in
order, starts again when a newer transfer begins, and hands over the whole
snapshot only once the last chunk arrived and the checksum matches; only
then does the Raft core see the snapshot.  A chunk from an older term is
dropped, so a leader change in the middle of a transfer leaves no trace.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

from attrs import define

from skydns.raft.core.messages import InstallSnapshot

#: Bytes of snapshot per InstallSnapshot message (the AMP layer splits it
#: into values of at most 65,535 bytes).
CHUNK_SIZE = 1024 * 1024

_CHUNK_HEADER = struct.Struct(">QQI")  # total length, offset, crc32 of the whole


def frame_chunks(data: bytes, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The ``data`` of each InstallSnapshot message that carries ``data``."""
    crc = zlib.crc32(data)
    total = len(data)
    offset = 0
    while True:
        chunk = data[offset : offset + chunk_size]
        yield _CHUNK_HEADER.pack(total, offset, crc) + chunk
        offset += len(chunk)
        if offset >= total:
            return


@define
class _Transfer:
    src: str
    term: int
    index: int
    total: int
    crc: int
    parts: list[bytes]
    received: int = 0


@define
class Assembler:
    """Puts the chunks of a leader's snapshot back together (one transfer at
    a time: a transfer of a newer term replaces the one under way)."""

    _current: _Transfer | None = None

    def receive(self, m: InstallSnapshot) -> InstallSnapshot | None:
        """Take one chunk; return the whole snapshot once it is complete and
        intact (``data`` is the snapshot), else None."""
        current = self._current
        if current is not None and m.term < current.term:
            return None  # from an older leader
        if len(m.data) < _CHUNK_HEADER.size:
            return None
        total, offset, crc = _CHUNK_HEADER.unpack_from(m.data)
        chunk = m.data[_CHUNK_HEADER.size :]
        if offset == 0:
            current = self._current = _Transfer(m.src, m.term, m.meta.index, total, crc, [])
        elif current is None or (
            current.src,
            current.term,
            current.index,
            current.total,
            current.crc,
        ) != (m.src, m.term, m.meta.index, total, crc):
            return None  # a chunk of a transfer we did not see begin
        if offset != current.received or current.received + len(chunk) > total:
            self._current = None  # a chunk was lost: wait for the leader's resend
            return None
        current.parts.append(chunk)
        current.received += len(chunk)
        if current.received < total:
            return None
        self._current = None
        data = b"".join(current.parts)
        if zlib.crc32(data) != crc:
            return None
        return InstallSnapshot(m.src, m.dst, m.term, m.meta, data)

    def pending(self) -> int:
        return 0 if self._current is None else 1
