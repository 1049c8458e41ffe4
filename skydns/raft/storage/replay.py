"""Reading a data dir back at start-up: the WAL's segments replayed in order,
the snapshot file, the hard state file, and what a damaged tail means.

Pure reading: nothing is changed on disk here (`DiskStorage.load` cuts a
damaged tail and notes a recovery once this has said what it found).
"""

from __future__ import annotations

import os
from itertools import pairwise

from attrs import define, field

from skydns.raft.core.messages import Entry, HardState, SnapshotMeta
from skydns.raft.storage import statefiles, wal
from skydns.raft.storage.errors import CorruptDataError
from skydns.raft.storage.files import IFiles
from skydns.raft.storage.logstate import LogState
from skydns.raft.storage.wal import Base, Compact, Truncate

#: The name of the file whose presence says the log is being recovered.
RECOVERING = "RECOVERING"


@define
class Segment:
    sequence: int
    prev_index: int  # the last entry before this segment
    path: str


@define
class Replayed:
    """What a data dir holds, as read."""

    state: LogState
    entries: list[Entry]
    segments: list[Segment] = field(factory=list)
    #: The valid size of the last segment (the damage after it, if any, is cut).
    size: int = 0
    #: (path, valid end, file size) of a damaged tail to cut off.
    damaged: tuple[str, int, int] | None = None
    #: The stored snapshot's metadata, if there is a snapshot file.
    snapshot: SnapshotMeta | None = None
    #: (sequence, term, vote) of the hard state file's newest slot.
    hard_state_file: tuple[int, int, str | None] | None = None
    #: Why acknowledged entries may be missing (SPEC §11), if they may.
    lost: list[str] = field(factory=list)


def read_data_dir(files: IFiles, path: str) -> Replayed:
    """Read the WAL (in ``path/wal``) and the files beside it."""
    wal_dir = os.path.join(path, "wal")
    snapshot = _read_snapshot(files, os.path.join(path, "snapshot"))
    found = list_segments(files, wal_dir)
    replayed = Replayed(LogState(), [], snapshot=snapshot[0] if snapshot else None)
    replayed.hard_state_file = _read_hard_state(files, os.path.join(path, "hardstate"))
    marker = os.path.join(path, RECOVERING)
    if files.exists(marker):
        reason = files.read(marker).decode("utf-8", "replace").strip()
        replayed.lost.append(reason or "a recovery was under way")
    if not found:
        if snapshot is not None:
            raise CorruptDataError(wal_dir, 0, "no WAL segments, but a snapshot exists")
        return replayed
    state = replayed.state = LogState(entries=[])
    for position, (sequence, first, seg_path) in enumerate(found):
        data = files.read(seg_path)
        contents = wal.read_segment(seg_path, data, sequence, position == len(found) - 1)
        prev_index = _replay(state, seg_path, contents, first, position == 0)
        replayed.segments.append(Segment(sequence, prev_index, seg_path))
        replayed.size = contents.valid_end
        if contents.valid_end < len(data):
            replayed.damaged = (seg_path, contents.valid_end, len(data))
        if contents.tail.lost is not None:
            replayed.lost.append(f"{seg_path}: {contents.tail.lost}")
    if state.base_index != state.snapshot.index:
        raise CorruptDataError(
            found[0][2],
            wal.SEGMENT_HEADER_SIZE,
            f"entries {state.snapshot.index + 1} to {state.base_index} are missing: "
            "an earlier segment is gone",
        )
    state.base_term = state.snapshot.term
    replayed.entries = state.entries or []
    state.entries = None
    return replayed


def merged_hard_state(replayed: Replayed) -> HardState:
    """The WAL's hard state, with the term and vote of the hard state file
    when it is newer (the WAL's frames that held them may be lost), and a
    commit index no further than the log (else committed entries are lost)."""
    hs = replayed.state.hard_state
    stored = replayed.hard_state_file
    if stored is not None:
        _, term, vote = stored
        if term > hs.term:
            hs = HardState(term, vote, hs.commit)
        elif term == hs.term and vote is not None and hs.vote != vote:
            if hs.vote is not None:
                raise CorruptDataError(
                    "hardstate", 0, f"the WAL votes for {hs.vote} in term {term}, the hard "
                    f"state file for {vote}",
                )  # fmt: skip
            hs = HardState(term, vote, hs.commit)
    last = replayed.state.last_index()
    if hs.commit > last:
        replayed.lost.append(
            f"the hard state says entries up to {hs.commit} were committed, but the log "
            f"ends at {last}"
        )
        hs = HardState(hs.term, hs.vote, max(last, replayed.state.snapshot.index))
    return hs


def list_segments(files: IFiles, wal_dir: str) -> list[tuple[int, int, str]]:
    """(sequence, first index, path) of each segment, in order."""
    if not files.is_dir(wal_dir):
        return []
    found = []
    for name in files.list_dir(wal_dir):
        path = os.path.join(wal_dir, name)
        if name.endswith(".tmp") and wal.SEGMENT_NAME.match(name[: -len(".tmp")]):
            continue  # a segment whose creation a crash interrupted (removed on load)
        match = wal.SEGMENT_NAME.match(name)
        if match is None:
            raise CorruptDataError(path, 0, "foreign file in the WAL directory")
        found.append((int(match.group(1), 16), int(match.group(2), 16), path))
    for (sequence, _, _), (following, _, path) in pairwise(found):
        if following != sequence + 1:
            raise CorruptDataError(path, 0, f"segment {sequence + 1:016x} is missing")
    return found


def _replay(
    state: LogState, path: str, contents: wal.SegmentContents, first: int, initial: bool
) -> int:
    """Apply one segment's records to ``state``; return its base's prev index."""
    frames = contents.frames
    if not frames or not isinstance(frames[0].records[0], Base):
        raise CorruptDataError(path, wal.SEGMENT_HEADER_SIZE, "segment has no base record")
    base = frames[0].records[0]
    assert isinstance(base, Base)
    if base.prev_index + 1 != first:
        raise CorruptDataError(path, frames[0].offset, "base does not match the file name")
    if initial:
        state.snapshot = SnapshotMeta(base.snap_index, base.snap_term)
        state.base_index, state.base_term = base.prev_index, base.prev_term
    elif (base.prev_index, base.prev_term) != (state.last_index(), state.last_term()):
        raise CorruptDataError(
            path,
            frames[0].offset,
            f"segment starts after entry {base.prev_index} of term {base.prev_term}, but "
            f"the log before it ends at {state.last_index()} of term {state.last_term()}",
        )
    for number, frame in enumerate(frames):
        for position, record in enumerate(frame.records):
            try:
                _apply(state, record, number == 0 and position == 0)
            except ValueError as e:
                raise CorruptDataError(path, frame.offset, str(e)) from e
    return base.prev_index


def _apply(state: LogState, record: wal.Record, at_start: bool) -> None:
    if isinstance(record, Base):
        if not at_start:
            raise ValueError("a base record in the middle of a segment")
    elif isinstance(record, HardState):
        state.hard_state = record
    elif isinstance(record, Entry):
        state.append(record)
    elif isinstance(record, Truncate):
        state.truncate(record.index)
    elif isinstance(record, Compact):
        state.compact(record.index, record.term)


def _read_snapshot(files: IFiles, path: str) -> tuple[SnapshotMeta, bytes] | None:
    try:
        raw = files.read(path)
    except FileNotFoundError:
        return None
    return statefiles.decode_snapshot(path, raw)


def _read_hard_state(files: IFiles, path: str) -> tuple[int, int, str | None] | None:
    try:
        raw = files.read(path)
    except FileNotFoundError:
        return None
    return statefiles.decode_hard_state(raw)
