"""Snapshots of the replicated state, and how they cross the network.

The replicated state is the registry *and* the exactly-once session table
(``skydns.raft.node.sessions``): a node restored from a snapshot must still
recognise a retried request it applied before the snapshot.  `encode_state`
writes both as one byte string::

    b"SKYS" | version (u8) | len(sessions JSON) (u32) | sessions JSON | registry snapshot

A session's cached result keeps only its status: the removals an applied
command produced matter only the first time (the leader's callbacks), never
for a retry's answer.

A snapshot is far bigger than one AMP value (65,535 bytes), so the leader
streams it to a follower as a series of `InstallSnapshot` messages whose
``data`` is a chunk (`frame_chunks`): a header with the snapshot's total
length, the chunk's offset and a CRC-32 of the whole snapshot, then up to
`CHUNK_SIZE` bytes (the AMP layer spreads each chunk over several values).
The follower's `Assembler` accepts the chunks of one (leader, term, index)
in order, starts again when a newer transfer begins, and hands over the
whole snapshot only once the last chunk arrived and the checksum matches;
only then does the Raft core see the snapshot.  A chunk from an older term
is dropped, so a leader change in the middle of a transfer leaves no trace.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Generator, Iterator
from typing import Any

from attrs import define

from skydns.names import Callback
from skydns.raft.core.messages import InstallSnapshot
from skydns.raft.node.sessions import SessionTable
from skydns.registry import (
    Applied,
    Instance,
    Registry,
    SnapshotError,
    run_steps,
    snapshot_pieces,
)

FrozenState = tuple[int, dict[str, Instance], dict[str, tuple[Callback, ...]]]

#: Bytes of snapshot per InstallSnapshot message (the AMP layer splits it
#: into values of at most 65,535 bytes).
CHUNK_SIZE = 1024 * 1024

_MAGIC = b"SKYS"
_STATE_HEADER = struct.Struct(">4sBI")
_CHUNK_HEADER = struct.Struct(">QQI")  # total length, offset, crc32 of the whole


def encode_sessions(
    sessions: dict[str, tuple[int, Applied]], addresses: dict[str, str | None] | None = None
) -> bytes:
    """The session table, and the members' Raft addresses at the snapshot."""
    table = {client: [seq, result.status] for client, (seq, result) in sessions.items()}
    body = {"sessions": table, "addresses": addresses or {}}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def encode_state(registry_bytes: bytes, sessions: bytes) -> bytes:
    """The snapshot bytes from a registry snapshot and `encode_sessions` bytes."""
    return _STATE_HEADER.pack(_MAGIC, 1, len(sessions)) + sessions + registry_bytes


def take(
    state: FrozenState,
    sessions: dict[str, tuple[int, Applied]],
    addresses: dict[str, str | None] | None = None,
) -> bytes:
    """Encode a `Registry.frozen_state` and a session table copy (thread-safe)."""
    return b"".join(run_steps(take_steps(state, sessions, addresses)))


def take_steps(
    state: FrozenState,
    sessions: dict[str, tuple[int, Applied]],
    addresses: dict[str, str | None] | None = None,
) -> Generator[None, None, list[bytes]]:
    """`take` in steps of about a millisecond (`snapshot_pieces`), returning
    the pieces whose join is the snapshot: the node joins them in a thread
    (``bytes.join`` lets go of the GIL while it copies megabytes)."""
    pieces = yield from snapshot_pieces(*state)
    session_bytes = encode_sessions(sessions, addresses)
    return [_STATE_HEADER.pack(_MAGIC, 1, len(session_bytes)), session_bytes, *pieces]


def _header(data: bytes) -> tuple[dict[str, Any], int]:
    if len(data) < _STATE_HEADER.size:
        raise SnapshotError("snapshot shorter than its header")
    magic, version, length = _STATE_HEADER.unpack_from(data)
    if magic != _MAGIC or version != 1:
        raise SnapshotError(f"not a snapshot this version can read ({magic!r}, {version})")
    start = _STATE_HEADER.size
    try:
        body = json.loads(data[start : start + length])
        if not isinstance(body, dict):
            raise TypeError("not an object")
    except (ValueError, TypeError) as e:
        raise SnapshotError(f"unreadable session table: {e}") from e
    return body, start + length


def decode_addresses(data: bytes) -> dict[str, str | None]:
    """The members' addresses a snapshot holds."""
    body, _ = _header(data)
    return {str(k): None if v is None else str(v) for k, v in body["addresses"].items()}


def decode_state(data: bytes) -> tuple[Registry, SessionTable[Applied]]:
    """The registry and session table a snapshot holds; `SnapshotError` if unreadable."""
    body, end = _header(data)
    try:
        raw = body["sessions"]
        saved = {str(c): (int(seq), Applied(str(status))) for c, (seq, status) in raw.items()}
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise SnapshotError(f"unreadable session table: {e}") from e
    registry = Registry.restore(data[end:])
    return registry, SessionTable.restore(saved)


# --- streaming ----------------------------------------------------------------


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
