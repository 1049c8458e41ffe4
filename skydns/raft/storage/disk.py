"""Raft's durable storage: the contract, a durable and an in-memory version.

`IRaftStorage` is what the Raft node persists through: the hard state, the
log (with conflict truncation, Raft §5.3) and the snapshot seam (§7).
`LogState` (``skydns.raft.storage.logstate``) holds the rules every implementation
follows, so the in-memory `MemoryStorage` (tests, simulation) and the
durable `DiskStorage` behave the same.

On disk a data dir holds ``LOCK`` (flock: one process at a time),
``snapshot`` (written atomically) and ``wal/``, the segments described in
``skydns.raft.storage.wal``.  The hard state is a record in the WAL, not a file of
its own: a save that changes both the term or vote and the log then costs one
``fdatasync``, not four syncs, and a segment's first frame repeats the hard
state so that old segments can be deleted.  Conflict truncation appends a
``Truncate`` record instead of rewriting the file, so that every change is
an append and a crash can only ever tear the tail.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from itertools import pairwise

from attrs import frozen
from twisted.logger import Logger
from zope.interface import Interface, implementer

from skydns.raft.core.messages import Entry, HardState, SnapshotMeta
from skydns.raft.storage import wal
from skydns.raft.storage.files import (
    DataDirLocked,
    lock_dir,
    replace_synced,
    sync_data,
    sync_dir,
    unlock_dir,
    write_all,
    write_atomically,
    write_synced,
)
from skydns.raft.storage.logstate import LogState
from skydns.raft.storage.wal import (
    Base,
    Compact,
    CorruptDataError,
    StorageError,
    StorageFailure,
    Truncate,
)

__all__ = [
    "CorruptDataError",
    "DataDirLocked",
    "DiskStorage",
    "IRaftStorage",
    "LogState",
    "MemoryStorage",
    "StorageError",
    "StorageFailure",
]

Loaded = tuple[HardState, SnapshotMeta | None, list[Entry]]


class IRaftStorage(Interface):
    """Where a Raft node keeps what must survive a crash (Raft Figure 2)."""

    def load() -> Loaded:  # type: ignore[misc, empty-body]
        """Open the storage and return the hard state, the snapshot the log
        starts after (None if it starts at index 1) and the entries.

        Raises `CorruptDataError` if the stored data is damaged beyond a torn
        tail, and `DataDirLocked` if another process holds it.
        """

    def save(hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        """Make ``hard_state`` (if not None) and ``entries`` durable before
        returning.

        ``entries`` are consecutive; if the first one's index is at or before
        the last stored index, the stored suffix from that index is replaced
        (Raft §5.3) without comparing terms: pass what the core's
        ``Ready.entries`` holds, which starts at the first real conflict.

        Raises `StorageFailure` if a write or sync failed: the caller must
        stop the process and must not acknowledge anything.
        """

    def compact(index: int, term: int) -> None:
        """Forget the entries up to ``index`` (which ends at ``term``): a
        snapshot holds them.  If the log has no entry ``index`` of ``term``,
        the whole log is dropped and the next entry is ``index + 1`` (§7)."""

    def save_snapshot(meta: SnapshotMeta, data: bytes) -> None:
        """Durably store a snapshot of the state machine, then compact to it."""

    def read_snapshot() -> tuple[SnapshotMeta, bytes] | None:  # type: ignore[misc]
        """The last snapshot saved, if any."""

    def close() -> None:  # type: ignore[misc]
        """Release the storage; nothing may be called on it afterwards."""


@implementer(IRaftStorage)
class MemoryStorage:
    """`IRaftStorage` in memory: everything saved is "durable" at once.

    For unit tests and the simulation, where a crash is modelled by building
    a new node on the same `MemoryStorage`.
    """

    def __init__(self) -> None:
        self._state = LogState(entries=[])
        self._snapshot: tuple[SnapshotMeta, bytes] | None = None
        self.saves = 0

    def load(self) -> Loaded:
        assert self._state.entries is not None
        saved = self._snapshot[0] if self._snapshot else None
        meta = self._state.snapshot_meta(saved)
        return self._state.hard_state, meta, list(self._state.entries)

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        cut = self._state.plan_save(entries)
        self.saves += 1
        if hard_state is not None:
            self._state.hard_state = hard_state
        if cut is not None:
            self._state.truncate(cut)
        for entry in entries:
            self._state.append(entry)

    def compact(self, index: int, term: int) -> None:
        self._state.compact(index, term)

    def save_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        if meta.index < self._state.snapshot.index:
            return
        self._snapshot = (meta, bytes(data))
        self._state.compact(meta.index, meta.term)

    def read_snapshot(self) -> tuple[SnapshotMeta, bytes] | None:
        return self._snapshot

    def close(self) -> None:
        pass


SEGMENT_SIZE = 64 * 1024 * 1024
_log = Logger()


@frozen
class _Segment:
    sequence: int
    prev_index: int  # the last entry before this segment
    path: str


@implementer(IRaftStorage)
class DiskStorage:
    """`IRaftStorage` in a data dir, durable across crashes.

    ``save`` does one write and one ``fdatasync`` on the calling thread; the
    node calls it once per batch (group commit), so the reactor blocks for
    one sync however many entries the batch holds (see ``bench/fsync.py``).
    """

    def __init__(self, path: str, segment_size: int = SEGMENT_SIZE) -> None:
        self.path = os.path.abspath(path)
        self.segment_size = segment_size
        self._wal = os.path.join(self.path, "wal")
        self._snapshot_path = os.path.join(self.path, "snapshot")
        self._lock: int | None = None
        self._fd: int | None = None
        self._state: LogState | None = None
        self._segments: list[_Segment] = []
        self._size = 0
        self._snapshot: SnapshotMeta | None = None
        self._failed: StorageFailure | None = None
        #: save, compact and save_snapshot may be called from two threads
        #: (a batch of entries, and a snapshot taken meanwhile).
        self._mutex = threading.RLock()
        #: One snapshot written at a time (one taken, one received); held
        #: before ``_mutex``, never after it.
        self._snapshot_lock = threading.Lock()

    # -- opening ---------------------------------------------------------

    def load(self) -> Loaded:
        if self._lock is not None:
            raise RuntimeError(f"{self.path} is already loaded")
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise StorageFailure(f"data dir {self.path} is not a directory")
        try:
            created = not os.path.isdir(self.path)
            os.makedirs(self.path, exist_ok=True)
            if created:
                sync_dir(os.path.dirname(self.path))
            self._lock = lock_dir(self.path)
        except OSError as e:
            raise StorageFailure(f"data dir {self.path}: {e}") from e
        try:
            return self._recover()
        except BaseException:
            self.close()
            raise

    def _recover(self) -> Loaded:
        try:
            return self._recover_files()
        except OSError as e:
            raise StorageFailure(f"data dir {self.path}: {e}") from e

    def _recover_files(self) -> Loaded:
        self._segments = []
        saved = self._read_snapshot_file()
        self._snapshot = saved[0] if saved else None
        found = self._list_segments()
        if not found:
            if saved is not None:
                raise CorruptDataError(self._wal, 0, "no WAL segments, but a snapshot exists")
            state = LogState()
            self._state = state
            self._start_segment(0)
            return state.hard_state, None, []
        state = LogState(entries=[])
        torn: tuple[str, int, int] | None = None
        for position, (sequence, first, path) in enumerate(found):
            last = position == len(found) - 1
            with open(path, "rb") as f:
                data = f.read()
            contents = wal.read_segment(path, data, sequence, last)
            prev_index = self._replay(state, path, contents, first, position == 0)
            self._segments.append(_Segment(sequence, prev_index, path))
            self._size = contents.valid_end
            if contents.valid_end < len(data):
                torn = (path, contents.valid_end, len(data))
        if state.base_index != state.snapshot.index:
            raise CorruptDataError(
                found[0][2],
                wal.SEGMENT_HEADER_SIZE,
                f"entries {state.snapshot.index + 1} to {state.base_index} are missing: "
                "an earlier segment is gone",
            )
        state.base_term = state.snapshot.term
        entries = state.entries or []
        state.entries = None
        self._state = state
        last_path = self._segments[-1].path
        if torn is not None:
            path, end, size = torn
            _log.warn(
                "{path}: cutting a torn tail of {dropped} bytes at offset {offset}",
                path=path,
                dropped=size - end,
                offset=end,
            )
            os.truncate(path, end)
        self._fd = os.open(last_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        if torn is not None:
            sync_data(self._fd, last_path)
        if self._snapshot is not None and self._snapshot.index > state.snapshot.index:
            # A crash came between writing the snapshot and compacting to it.
            index = self._snapshot.index
            self.compact(index, self._snapshot.term)
            entries = [e for e in entries if e.index > index] if state.terms else []
        meta = state.snapshot_meta(self._snapshot)
        return state.hard_state, meta, entries

    def _list_segments(self) -> list[tuple[int, int, str]]:
        if not os.path.isdir(self._wal):
            os.mkdir(self._wal)
            sync_dir(self.path)
        found = []
        for name in sorted(os.listdir(self._wal)):
            path = os.path.join(self._wal, name)
            if name.endswith(".tmp") and wal.SEGMENT_NAME.match(name[: -len(".tmp")]):
                os.unlink(path)  # a segment whose creation a crash interrupted
                continue
            match = wal.SEGMENT_NAME.match(name)
            if match is None:
                raise CorruptDataError(path, 0, "foreign file in the WAL directory")
            found.append((int(match.group(1), 16), int(match.group(2), 16), path))
        for (sequence, _, _), (following, _, path) in pairwise(found):
            if following != sequence + 1:
                raise CorruptDataError(path, 0, f"segment {sequence + 1:016x} is missing")
        return found

    def _replay(
        self, state: LogState, path: str, contents: wal.SegmentContents, first: int, initial: bool
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
                    self._apply(state, record, number == 0 and position == 0)
                except ValueError as e:
                    raise CorruptDataError(path, frame.offset, str(e)) from e
        return base.prev_index

    @staticmethod
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
        else:
            state.compact(record.index, record.term)

    def _read_snapshot_file(self) -> tuple[SnapshotMeta, bytes] | None:
        if os.path.exists(self._snapshot_path + ".tmp"):
            os.unlink(self._snapshot_path + ".tmp")
        try:
            with open(self._snapshot_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        return wal.decode_snapshot(self._snapshot_path, raw)

    # -- writing ---------------------------------------------------------

    def _live(self) -> LogState:
        if self._failed is not None:
            raise StorageFailure(f"storage failed earlier and must not be used: {self._failed}")
        if self._state is None:
            raise RuntimeError(f"{self.path}: call load() first")
        return self._state

    def _guard(self, error: StorageFailure) -> StorageFailure:
        self._failed = error
        return error

    def _start_segment(self, sequence: int) -> None:
        """Create the next segment whole, then switch appends to it."""
        state = self._live()
        path = os.path.join(self._wal, wal.segment_name(sequence, state.last_index() + 1))
        base = Base(
            state.last_index(), state.last_term(), state.snapshot.index, state.snapshot.term
        )
        data = wal.segment_header(sequence) + wal.encode_frame([base, state.hard_state])
        try:
            write_atomically(path, data)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except StorageFailure as e:
            raise self._guard(e) from e
        except OSError as e:
            raise self._guard(StorageFailure(f"{path}: cannot open: {e}")) from e
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        self._segments.append(_Segment(sequence, state.last_index(), path))
        self._size = len(data)

    def _append(self, records: list[wal.Record]) -> None:
        if self._size >= self.segment_size:
            self._start_segment(self._segments[-1].sequence + 1)
        frame = wal.encode_frame(records)
        path = self._segments[-1].path
        assert self._fd is not None
        try:
            write_all(self._fd, frame, path)
            sync_data(self._fd, path)
        except StorageFailure as e:
            raise self._guard(e) from e
        self._size += len(frame)

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        with self._mutex:
            self._save(hard_state, entries)

    def _save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        state = self._live()
        cut = state.plan_save(entries)
        records: list[wal.Record] = []
        if hard_state is not None and hard_state != state.hard_state:
            records.append(hard_state)
        if cut is not None:
            records.append(Truncate(cut))
        records.extend(entries)
        if not records:
            return
        self._append(records)
        if hard_state is not None:
            state.hard_state = hard_state
        if cut is not None:
            state.truncate(cut)
        for entry in entries:
            state.append(entry)

    def compact(self, index: int, term: int) -> None:
        with self._mutex:
            self._compact(index, term)

    def _compact(self, index: int, term: int) -> None:
        state = self._live()
        if index <= state.snapshot.index:
            return
        matched = state.term_at(index) == term
        self._append([Compact(index, term)])
        state.compact(index, term)
        if not matched:
            # The whole log was dropped (§7).  A replay could not tell that
            # from the Compact record alone once earlier segments are gone,
            # so the log starts again in a segment of its own.
            self._start_segment(self._segments[-1].sequence + 1)
        removed = False
        # A segment can go once the next one starts at or before the snapshot.
        while len(self._segments) > 1 and (not matched or self._segments[1].prev_index <= index):
            try:
                os.unlink(self._segments[0].path)
            except OSError as e:
                _log.warn("{path}: cannot remove: {e}", path=self._segments[0].path, e=e)
                break
            del self._segments[0]
            removed = True
        if removed:
            try:
                sync_dir(self._wal)
            except StorageFailure as e:
                raise self._guard(e) from e

    def save_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        # The snapshot file is written and fsync'ed without the mutex, which
        # `save` needs: a batch of entries (a few writes' acknowledgements)
        # never waits for megabytes of snapshot to reach the disk.  Only the
        # rename and the compaction are done under it.
        with self._snapshot_lock:
            with self._mutex:
                if meta.index < self._live().snapshot.index:
                    return
            tmp = self._snapshot_path + ".tmp"
            try:
                write_synced(tmp, wal.snapshot_head(meta, data), data)
            except StorageFailure as e:
                with self._mutex:
                    raise self._guard(e) from e
            with self._mutex:
                if meta.index < self._live().snapshot.index:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)  # overtaken by a newer snapshot meanwhile
                    return
                try:
                    replace_synced(tmp, self._snapshot_path)
                except StorageFailure as e:
                    raise self._guard(e) from e
                self._snapshot = meta
                self._compact(meta.index, meta.term)

    def read_snapshot(self) -> tuple[SnapshotMeta, bytes] | None:
        self._live()
        try:
            return self._read_snapshot_file()
        except OSError as e:
            raise StorageFailure(f"{self._snapshot_path}: {e}") from e

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock is not None:
            unlock_dir(self._lock)
            self._lock = None
        self._state = None
