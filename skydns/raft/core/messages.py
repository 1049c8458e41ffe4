"""Raft's persistent records: log entries and the hard state.

These are shared by the pure core (``skydns.raft.core.raft``), the durable log
(``skydns.raft.storage.disk``) and the AMP transport, so their shape and byte encoding
live here, apart from all of them.  Messages between nodes are added here by
the core.
"""

from __future__ import annotations

import enum
import json
import struct

from attrs import frozen

from skydns import jsoninput


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
    header = _ENTRY_HEADER.pack(entry.term, entry.index, int(entry.kind), len(entry.data))
    return header + entry.data


def encoded_size(entry: Entry) -> int:
    """``len(encode_entry(entry))``, without encoding it."""
    return _ENTRY_HEADER.size + len(entry.data)


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


# --- Messages between nodes -------------------------------------------------
#
# Every message carries its sender (``src``), its addressee (``dst``) and the
# sender's term.  They are plain frozen values: the core produces them in
# ``Ready.messages`` and consumes them in ``RaftCore.step``; how they travel
# (AMP, or the simulation's network) is the adapter's business.


@frozen
class Configuration:
    """Who votes and who only follows (learners receive the log, never vote).

    Changed through ``EntryKind.CONFIG`` entries (`encode_config`), one
    member at a time; a snapshot carries the configuration at its index.
    """

    voters: frozenset[str]
    learners: frozenset[str] = frozenset()


def encode_config(config: Configuration) -> bytes:
    """The data of an ``EntryKind.CONFIG`` entry: the whole new configuration."""
    body = {"voters": sorted(config.voters), "learners": sorted(config.learners)}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def decode_config(data: bytes) -> Configuration:
    try:
        body = jsoninput.loads(data)
        voters = frozenset(str(v) for v in body["voters"])
        learners = frozenset(str(v) for v in body["learners"])
    except (ValueError, KeyError, TypeError) as e:
        raise EncodingError(f"not a configuration: {e}") from e
    return Configuration(voters, learners)


@frozen
class SnapshotMeta:
    """Where a snapshot ends: the log may start after ``index``."""

    index: int = 0
    term: int = 0
    config: Configuration | None = None


@frozen
class RequestVote:
    """Raft §5.2; with ``prevote`` the thesis §9.6 pre-election round, which
    changes nobody's term.  ``transfer`` marks a campaign started by
    `TimeoutNow`, which may depose a leader the voter still hears from."""

    src: str
    dst: str
    term: int
    last_log_index: int
    last_log_term: int
    prevote: bool = False
    transfer: bool = False


@frozen
class RequestVoteResponse:
    src: str
    dst: str
    term: int
    granted: bool
    prevote: bool = False


@frozen
class AppendEntries:
    """Raft §5.3: entries after ``prev_log_index``, which must hold a
    ``prev_log_term`` entry on the follower."""

    src: str
    dst: str
    term: int
    prev_log_index: int
    prev_log_term: int
    entries: tuple[Entry, ...]
    commit: int


@frozen
class AppendEntriesResponse:
    """On success ``index`` is the last index the follower now matches.

    On rejection ``index`` is the rejected ``prev_log_index`` and the hint
    (``hint_index``, ``hint_term``) is the follower's last entry at or below
    it whose term is at most the leader's ``prev_log_term``: the leader skips
    straight back to it (thesis §5.3 "fast backup").
    """

    src: str
    dst: str
    term: int
    success: bool
    index: int
    hint_index: int = 0
    hint_term: int = 0
    #: The follower's log may lack entries it once acknowledged (SPEC §11):
    #: the leader does not count it towards commits until this is false.
    recovering: bool = False


@frozen
class Heartbeat:
    """Keeps followers quiet and carries the commit index (capped at what
    the follower is known to hold).  ``context`` is set when the round also
    confirms leadership for a ReadIndex request (thesis §6.4)."""

    src: str
    dst: str
    term: int
    commit: int
    context: bytes | None = None


@frozen
class HeartbeatResponse:
    src: str
    dst: str
    term: int
    context: bytes | None = None


@frozen
class ReadIndexRequest:
    """A follower forwards a linearizable read to its leader."""

    src: str
    dst: str
    term: int
    context: bytes


@frozen
class ReadIndexResponse:
    """The leader's confirmed read index for a forwarded read."""

    src: str
    dst: str
    term: int
    index: int
    context: bytes


@frozen
class TimeoutNow:
    """Leadership transfer (thesis §3.10): campaign now, skipping PreVote."""

    src: str
    dst: str
    term: int


@frozen
class InstallSnapshot:
    """Seam for the snapshot issue: the core emits this (with empty
    ``data``, which the adapter fills from its snapshot store) when a
    follower needs entries the log no longer holds."""

    src: str
    dst: str
    term: int
    meta: SnapshotMeta
    data: bytes = b""


Message = (
    RequestVote
    | RequestVoteResponse
    | AppendEntries
    | AppendEntriesResponse
    | Heartbeat
    | HeartbeatResponse
    | ReadIndexRequest
    | ReadIndexResponse
    | TimeoutNow
    | InstallSnapshot
)
