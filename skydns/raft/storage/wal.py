"""The write-ahead log's on-disk format: segment files of checksummed frames.

A segment is a header (magic, format version, sequence number, CRC) followed
by frames.  A frame is what one ``save()`` writes with one ``write`` and one
``fdatasync`` (a save bigger than `MAX_WRITE` is split into several, each
synced before the next is written): a header (mark, body length, CRC32 of the body, CRC32 of the
header) and a body holding one or more typed records.  Because a whole batch
shares one checksum, recovery sees a batch entirely or not at all.

The frame header has its own checksum so that a damaged length is never
trusted.  What a damaged tail of the last segment means is decided by
`read_segment` (`Tail`): a torn last write, or frames that had been synced
and are gone.  Everything here is pure: bytes in, records out.
"""

from __future__ import annotations

import enum
import re
import struct
import zlib
from collections.abc import Iterable, Sequence

from attrs import frozen

from skydns.raft.core.messages import (
    EncodingError,
    Entry,
    HardState,
    decode_entry,
    encode_entry,
    encoded_size,
)
from skydns.raft.storage.errors import CorruptDataError

MAGIC = b"SKYDWAL\n"
VERSION = 1
_SEGMENT_HEADER = struct.Struct(">8sHQI")  # magic, version, sequence, crc32 of the rest
SEGMENT_HEADER_SIZE = _SEGMENT_HEADER.size

FRAME_MARK = b"\xd5\x4c\x0f\x5a"
_FRAME_HEADER = struct.Struct(">4sIII")  # mark, body length, crc32(body), crc32(header)
FRAME_HEADER_SIZE = _FRAME_HEADER.size
_RECORD_HEADER = struct.Struct(">BI")  # record type, payload length

SEGMENT_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")


class RecordType(enum.IntEnum):
    BASE = 1  # first frame of each segment: where it continues the log from
    HARD_STATE = 2
    ENTRY = 3
    TRUNCATE = 4  # entries with index >= this are removed (Raft §5.3 conflict)
    COMPACT = 5  # entries up to this index live in a snapshot (Raft §7)


@frozen
class Base:
    """What a segment continues from: the last entry before it and the
    compaction point when it was started."""

    prev_index: int
    prev_term: int
    snap_index: int
    snap_term: int


@frozen
class Truncate:
    index: int


@frozen
class Compact:
    index: int
    term: int


Record = Base | HardState | Entry | Truncate | Compact

_BASE = struct.Struct(">QQQQ")
_HARD_STATE = struct.Struct(">QQB")  # term, commit, has vote; then the vote in UTF-8
_INDEX = struct.Struct(">Q")
_COMPACT = struct.Struct(">QQ")


def segment_name(sequence: int, first_index: int) -> str:
    return f"{sequence:016x}-{first_index:016x}.wal"


def segment_header(sequence: int) -> bytes:
    head = struct.pack(">8sHQ", MAGIC, VERSION, sequence)
    return head + struct.pack(">I", zlib.crc32(head))


def _encode_record(record: Record) -> tuple[RecordType, bytes]:
    if isinstance(record, Entry):
        return RecordType.ENTRY, encode_entry(record)
    if isinstance(record, HardState):
        vote = b"" if record.vote is None else record.vote.encode("utf-8")
        head = _HARD_STATE.pack(record.term, record.commit, record.vote is not None)
        return RecordType.HARD_STATE, head + vote
    if isinstance(record, Truncate):
        return RecordType.TRUNCATE, _INDEX.pack(record.index)
    if isinstance(record, Compact):
        return RecordType.COMPACT, _COMPACT.pack(record.index, record.term)
    return RecordType.BASE, _BASE.pack(
        record.prev_index, record.prev_term, record.snap_index, record.snap_term
    )


def _decode_record(kind: int, payload: bytes) -> Record:
    if kind == RecordType.ENTRY:
        return decode_entry(payload)
    if kind == RecordType.HARD_STATE:
        if len(payload) < _HARD_STATE.size:
            raise EncodingError("hard state shorter than its header")
        term, commit, has_vote = _HARD_STATE.unpack_from(payload)
        raw = payload[_HARD_STATE.size :]
        if not has_vote and raw:
            raise EncodingError("hard state without a vote carries one")
        try:
            vote = raw.decode("utf-8") if has_vote else None
        except UnicodeDecodeError as e:
            raise EncodingError("vote is not UTF-8") from e
        return HardState(term, vote, commit)
    fixed: dict[int, struct.Struct] = {
        RecordType.TRUNCATE: _INDEX,
        RecordType.COMPACT: _COMPACT,
        RecordType.BASE: _BASE,
    }
    layout = fixed.get(kind)
    if layout is None:
        raise EncodingError(f"unknown record type {kind}")
    if len(payload) != layout.size:
        raise EncodingError(f"record type {kind} has {len(payload)} bytes")
    values = layout.unpack(payload)
    if kind == RecordType.TRUNCATE:
        return Truncate(*values)
    if kind == RecordType.COMPACT:
        return Compact(*values)
    return Base(*values)


def encode_frame(records: Iterable[Record]) -> bytes:
    """One batch as the bytes written to the end of a segment."""
    parts = []
    for record in records:
        kind, payload = _encode_record(record)
        parts.append(_RECORD_HEADER.pack(kind, len(payload)))
        parts.append(payload)
    body = b"".join(parts)
    head = struct.pack(">4sII", FRAME_MARK, len(body), zlib.crc32(body))
    return head + struct.pack(">I", zlib.crc32(head)) + body


def decode_body(body: bytes) -> list[Record]:
    records: list[Record] = []
    offset = 0
    while offset < len(body):
        if len(body) - offset < _RECORD_HEADER.size:
            raise EncodingError("record header cut short")
        kind, length = _RECORD_HEADER.unpack_from(body, offset)
        offset += _RECORD_HEADER.size
        if length > len(body) - offset:
            raise EncodingError("record longer than its frame")
        records.append(_decode_record(kind, body[offset : offset + length]))
        offset += length
    if not records:
        raise EncodingError("empty frame")
    return records


def _frame_at(data: bytes, offset: int) -> bytes | None:
    """The body of a valid frame starting at ``offset``, or None."""
    if len(data) - offset < FRAME_HEADER_SIZE:
        return None
    mark, length, body_crc, head_crc = _FRAME_HEADER.unpack_from(data, offset)
    if mark != FRAME_MARK or zlib.crc32(data[offset : offset + 12]) != head_crc:
        return None
    start = offset + FRAME_HEADER_SIZE
    if length > len(data) - start:
        return None
    body = data[start : start + length]
    if zlib.crc32(body) != body_crc:
        return None
    return body


def _valid_frame_after(data: bytes, offset: int) -> int | None:
    """The offset of the first valid frame after ``offset``, if any."""
    position = data.find(FRAME_MARK, offset + 1)
    while position >= 0:
        if _frame_at(data, position) is not None:
            return position
        position = data.find(FRAME_MARK, position + 1)
    return None


@frozen
class Frame:
    offset: int
    end: int
    records: Sequence[Record]


#: The largest write a save makes: a bigger batch is written as several
#: frames, each synced before the next is written, so a crash can leave at
#: most one unsynced write, of at most this many bytes, in a segment.
MAX_WRITE = 1024 * 1024


@frozen
class Tail:
    """What follows the last valid frame of the last segment.

    ``lost`` is None for a clean end or a torn last write (a crash in the
    middle of the one write that was not yet synced: nothing in it was
    acknowledged, so it is cut off).  Otherwise it says why frames that had
    been synced must be gone (SPEC §11): the node keeps what is valid and
    recovers the rest from a leader.
    """

    size: int = 0
    lost: str | None = None


@frozen
class SegmentContents:
    frames: Sequence[Frame]
    #: Where the valid data ends; short of the file's size after a damaged tail.
    valid_end: int
    tail: Tail = Tail()


def _classify_tail(data: bytes, offset: int) -> Tail:
    """Whether the damage from ``offset`` to the end is one torn write."""
    size = len(data) - offset
    following = _valid_frame_after(data, offset)
    if following is not None:
        # Only the last write can be unsynced: one after it means it was synced.
        return Tail(size, f"corrupt data at byte offset {offset}: a damaged frame followed "
                          f"by a valid one at {following}")  # fmt: skip
    if size >= FRAME_HEADER_SIZE:
        mark, length, _, head_crc = _FRAME_HEADER.unpack_from(data, offset)
        if mark == FRAME_MARK and zlib.crc32(data[offset : offset + 12]) == head_crc:
            beyond = size - FRAME_HEADER_SIZE - length
            if beyond > 0:
                return Tail(size, f"corrupt data at byte offset {offset}: {beyond} bytes "
                                  "follow the end of a damaged frame")  # fmt: skip
            return Tail(size)
    if size > MAX_WRITE + FRAME_HEADER_SIZE and not any(data[offset:]):
        return Tail(size, f"corrupt data at byte offset {offset}: a zeroed tail of {size} "
                          "bytes, longer than any one write")  # fmt: skip
    return Tail(size)


def read_segment(path: str, data: bytes, sequence: int, last: bool) -> SegmentContents:
    """Parse one segment's bytes.

    Damage at the end of the last segment is classified (`Tail`); damage
    anywhere else raises `CorruptDataError` naming the file and offset.
    """
    if len(data) < SEGMENT_HEADER_SIZE:
        raise CorruptDataError(path, 0, "segment shorter than its header")
    magic, version, stored_sequence, crc = _SEGMENT_HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CorruptDataError(path, 0, f"bad magic {magic!r}: not a SkyDNS WAL segment")
    if zlib.crc32(data[: SEGMENT_HEADER_SIZE - 4]) != crc:
        raise CorruptDataError(path, 0, "segment header checksum mismatch")
    if version != VERSION:
        raise CorruptDataError(path, 8, f"unsupported format version {version}")
    if stored_sequence != sequence:
        raise CorruptDataError(path, 10, f"header says sequence {stored_sequence}")
    frames: list[Frame] = []
    offset = SEGMENT_HEADER_SIZE
    while offset < len(data):
        body = _frame_at(data, offset)
        if body is None:
            if last:
                return SegmentContents(frames, offset, _classify_tail(data, offset))
            following = _valid_frame_after(data, offset)
            why = "damaged frame" if following is None else f"damaged frame before {following}"
            raise CorruptDataError(path, offset, why + " (bad checksum or length)")
        try:
            records = decode_body(body)
        except EncodingError as e:
            raise CorruptDataError(path, offset, f"undecodable record: {e}") from e
        end = offset + FRAME_HEADER_SIZE + len(body)
        frames.append(Frame(offset, end, records))
        offset = end
    return SegmentContents(frames, offset)


def encode_frames(records: Sequence[Record]) -> list[bytes]:
    """``records`` as frames of at most about `MAX_WRITE` bytes each (a
    record bigger than that gets a frame of its own)."""
    frames: list[bytes] = []
    batch: list[Record] = []
    size = 0
    for record in records:
        record_size = _RECORD_HEADER.size + _payload_size(record)
        if batch and size + record_size > MAX_WRITE:
            frames.append(encode_frame(batch))
            batch, size = [], 0
        batch.append(record)
        size += record_size
    if batch:
        frames.append(encode_frame(batch))
    return frames


def _payload_size(record: Record) -> int:
    if isinstance(record, Entry):
        return encoded_size(record)
    return len(_encode_record(record)[1])
