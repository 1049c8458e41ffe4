"""The two small files of a data dir besides the WAL: the snapshot and the
hard state.

``snapshot`` holds the last snapshot of the state machine (written
atomically: a new file, synced, renamed over the old one).

``hardstate`` holds the term and vote again, beside the WAL's hard state
records: a vote is a promise never to vote for anyone else in that term,
and it must survive even the loss of WAL frames that protocol-aware
recovery (SPEC §11) tolerates.  It changes only at elections, so it costs
one extra ``fdatasync`` per term or vote change.  It has two slots written
alternately, each with a sequence number and a checksum: a write torn by a
crash spoils only the slot being written, and the other holds the
previous value.
"""

from __future__ import annotations

import json
import struct
import zlib

from skydns.raft.core.messages import Configuration, SnapshotMeta
from skydns.raft.storage.errors import CorruptDataError

VERSION = 1
SNAPSHOT_MAGIC = b"SKYDSNP\n"
# magic, version, index, term, len(config), len(data), crc32(config + data), crc32(header)
_SNAPSHOT_HEADER = struct.Struct(">8sHQQIQII")


def encode_snapshot(meta: SnapshotMeta, data: bytes) -> bytes:
    """A snapshot file's bytes: its metadata, the state machine's bytes, CRCs."""
    return snapshot_head(meta, data) + data


def snapshot_head(meta: SnapshotMeta, data: bytes) -> bytes:
    """What a snapshot file holds before ``data`` (`encode_snapshot`): a
    snapshot of megabytes is written as these two pieces, not copied into one."""
    config = b""
    if meta.config is not None:
        config = json.dumps(
            {"voters": sorted(meta.config.voters), "learners": sorted(meta.config.learners)}
        ).encode("utf-8")
    crc = zlib.crc32(data, zlib.crc32(config))
    head = struct.pack(
        ">8sHQQIQI", SNAPSHOT_MAGIC, VERSION, meta.index, meta.term, len(config), len(data), crc
    )
    return head + struct.pack(">I", zlib.crc32(head)) + config


def decode_snapshot(path: str, raw: bytes) -> tuple[SnapshotMeta, bytes]:
    """Parse a snapshot file; it is written atomically, so any damage is corruption."""
    if len(raw) < _SNAPSHOT_HEADER.size:
        raise CorruptDataError(path, 0, "snapshot shorter than its header")
    magic, version, index, term, config_len, data_len, crc, head_crc = _SNAPSHOT_HEADER.unpack_from(
        raw
    )
    if magic != SNAPSHOT_MAGIC:
        raise CorruptDataError(path, 0, f"bad magic {magic!r}: not a SkyDNS snapshot")
    if zlib.crc32(raw[: _SNAPSHOT_HEADER.size - 4]) != head_crc:
        raise CorruptDataError(path, 0, "snapshot header checksum mismatch")
    if version != VERSION:
        raise CorruptDataError(path, 8, f"unsupported format version {version}")
    start = _SNAPSHOT_HEADER.size
    if len(raw) != start + config_len + data_len:
        raise CorruptDataError(path, start, "snapshot length does not match its header")
    config_raw = raw[start : start + config_len]
    data = raw[start + config_len :]
    if zlib.crc32(data, zlib.crc32(config_raw)) != crc:
        raise CorruptDataError(path, start, "snapshot checksum mismatch")
    config = None
    if config_raw:
        try:
            fields = json.loads(config_raw)
            config = Configuration(frozenset(fields["voters"]), frozenset(fields["learners"]))
        except (ValueError, KeyError, TypeError) as e:
            raise CorruptDataError(path, start, f"bad configuration: {e}") from e
    return SnapshotMeta(index, term, config), data


HARD_STATE_MAGIC = b"SKHS"
#: magic, sequence, term, vote length, vote (padded), crc32 of the rest
_SLOT = struct.Struct(">4sQQB64s")
SLOT_SIZE = _SLOT.size + 4


def encode_hard_state_slot(sequence: int, term: int, vote: str | None) -> bytes:
    """One slot of the ``hardstate`` file; written at ``(sequence % 2) * SLOT_SIZE``."""
    raw = (vote or "").encode("utf-8")
    if len(raw) > 64:
        raise ValueError("a node id is at most 64 bytes")
    flag = 0 if vote is None else len(raw) + 1
    body = _SLOT.pack(HARD_STATE_MAGIC, sequence, term, flag, raw)
    return body + struct.pack(">I", zlib.crc32(body))


def decode_hard_state(raw: bytes) -> tuple[int, int, str | None] | None:
    """The newest intact slot: (sequence, term, vote), or None if neither is."""
    best: tuple[int, int, str | None] | None = None
    for start in (0, SLOT_SIZE):
        slot = raw[start : start + SLOT_SIZE]
        if len(slot) != SLOT_SIZE:
            continue
        body, (crc,) = slot[:-4], struct.unpack(">I", slot[-4:])
        if zlib.crc32(body) != crc:
            continue
        magic, sequence, term, flag, padded = _SLOT.unpack(body)
        if magic != HARD_STATE_MAGIC:
            continue
        try:
            vote = None if flag == 0 else padded[: flag - 1].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if best is None or sequence > best[0]:
            best = (sequence, term, vote)
    return best
