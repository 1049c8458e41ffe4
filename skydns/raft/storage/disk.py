"""`DiskStorage`: a Raft node's durable storage in a data dir.

A data dir holds ``LOCK`` (one process at a time), ``snapshot`` (written
atomically), ``hardstate`` (term and vote, ``skydns.raft.storage.statefiles``),
``wal/`` (segments of checksummed frames, ``skydns.raft.storage.wal``), and
``RECOVERING`` while a log that lost acknowledged entries is being restored
by a leader (SPEC §11).  The hard state is also a record in the WAL, so a
save that changes the term or vote and the log costs one WAL sync plus one
of ``hardstate``; a segment's first frame repeats the hard state so that old
segments can be deleted.  Conflict truncation appends a ``Truncate`` record
instead of rewriting the file: every change is an append, and a crash can
only ever tear the tail.

Every file operation goes through an `IFiles`, the real file system in
production and a simulated disk in the simulation.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from skydns.raft.core.messages import Entry, HardState, SnapshotMeta
from skydns.raft.storage import statefiles, wal
from skydns.raft.storage.errors import CorruptDataError, StorageFailure
from skydns.raft.storage.files import (
    IFile,
    IFiles,
    OSFiles,
    replace_synced,
    write_atomically,
    write_synced,
)
from skydns.raft.storage.interface import IRaftStorage, Loaded
from skydns.raft.storage.logstate import LogState
from skydns.raft.storage.replay import (
    RECOVERING,
    Segment,
    list_segments,
    merged_hard_state,
    read_data_dir,
)
from skydns.raft.storage.wal import Base, Compact, Truncate

SEGMENT_SIZE = 64 * 1024 * 1024
_log = Logger()


@implementer(IRaftStorage)
class DiskStorage:
    """`IRaftStorage` in a data dir, durable across crashes.

    ``save`` does one write and one ``fdatasync`` on the calling thread (a
    batch over `wal.MAX_WRITE` bytes: one per frame); the node calls it once
    per batch (group commit, see ``bench/fsync.py``).
    """

    def __init__(
        self, path: str, segment_size: int = SEGMENT_SIZE, files: IFiles | None = None
    ) -> None:
        self.files: IFiles = files if files is not None else OSFiles()
        self.path = os.path.abspath(path) if files is None else path
        self.segment_size = segment_size
        self._wal = os.path.join(self.path, "wal")
        self._snapshot_path = os.path.join(self.path, "snapshot")
        self._hard_state_path = os.path.join(self.path, "hardstate")
        self._lock: Any = None
        self._file: IFile | None = None
        self._hard_state_file: IFile | None = None
        #: The sequence number of the hard state file's newest slot, and its value.
        self._hard_state_slot: tuple[int, int, str | None] = (0, 0, None)
        self._state: LogState | None = None
        self._segments: list[Segment] = []
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
        files = self.files
        if files.exists(self.path) and not files.is_dir(self.path):
            raise StorageFailure(f"data dir {self.path} is not a directory")
        try:
            created = not files.is_dir(self.path)
            files.make_dirs(self.path)
            if created:
                files.sync_dir(os.path.dirname(self.path) or ".")
            self._lock = files.lock(self.path)
        except OSError as e:
            raise StorageFailure(f"data dir {self.path}: {e}") from e
        try:
            return self._open()
        except OSError as e:
            self.close()
            raise StorageFailure(f"data dir {self.path}: {e}") from e
        except BaseException:
            self.close()
            raise

    def _open(self) -> Loaded:
        files = self.files
        for name in files.list_dir(self.path):
            if name.endswith(".tmp"):
                files.unlink(os.path.join(self.path, name))  # a write a crash interrupted
        if not files.is_dir(self._wal):
            files.make_dirs(self._wal)
            files.sync_dir(self.path)
        for name in files.list_dir(self._wal):
            if name.endswith(".tmp"):
                files.unlink(os.path.join(self._wal, name))
        replayed = read_data_dir(files, self.path)
        hard_state = merged_hard_state(replayed)
        self._snapshot = replayed.snapshot
        self._state = state = replayed.state
        state.hard_state = hard_state
        entries = replayed.entries
        if not replayed.segments:
            self._start_segment(0)
        else:
            self._segments = replayed.segments
            self._size = replayed.size
            last_path = self._segments[-1].path
            if replayed.damaged is not None:
                path, end, size = replayed.damaged
                _log.warn("{path}: cutting a damaged tail of {dropped} bytes at offset {offset}",
                          path=path, dropped=size - end, offset=end)  # fmt: skip
                files.truncate(path, end)
            self._file = files.open_append(last_path)
            if replayed.damaged is not None:
                self._file.datasync()
        self._open_hard_state(replayed.hard_state_file, hard_state)
        recovering = "; ".join(replayed.lost) or None
        if recovering is not None and not files.exists(os.path.join(self.path, RECOVERING)):
            _log.critical(
                "{path}: the log may have lost entries this node acknowledged ({reason}); "
                "it will not vote until a leader has restored it",
                path=self.path, reason=recovering,
            )  # fmt: skip
            write_atomically(files, os.path.join(self.path, RECOVERING), recovering.encode())
        if self._snapshot is not None and self._snapshot.index > state.snapshot.index:
            # A crash came between writing the snapshot and compacting to it.
            index = self._snapshot.index
            self.compact(index, self._snapshot.term)
            entries = [e for e in entries if e.index > index] if state.terms else []
        meta = state.snapshot_meta(self._snapshot)
        return Loaded(hard_state, meta, entries, recovering)

    def _open_hard_state(
        self, stored: tuple[int, int, str | None] | None, hard_state: HardState
    ) -> None:
        files = self.files
        if stored is None:
            first = statefiles.encode_hard_state_slot(1, hard_state.term, hard_state.vote)
            write_atomically(files, self._hard_state_path, first, b"\0" * statefiles.SLOT_SIZE)
            stored = (1, hard_state.term, hard_state.vote)
        self._hard_state_slot = stored
        self._hard_state_file = files.open_update(self._hard_state_path)

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
            write_atomically(self.files, path, data)
            handle = self.files.open_append(path)
        except StorageFailure as e:
            raise self._guard(e) from e
        except OSError as e:
            raise self._guard(StorageFailure(f"{path}: cannot open: {e}")) from e
        if self._file is not None:
            self._file.close()
        self._file = handle
        self._segments.append(Segment(sequence, state.last_index(), path))
        self._size = len(data)

    def _append(self, records: list[wal.Record]) -> None:
        if self._size >= self.segment_size:
            self._start_segment(self._segments[-1].sequence + 1)
        assert self._file is not None
        for frame in wal.encode_frames(records):
            try:
                self._file.write(frame)
                self._file.datasync()
            except StorageFailure as e:
                raise self._guard(e) from e
            self._size += len(frame)

    def _save_hard_state(self, hard_state: HardState) -> None:
        """Write the term and vote to the older slot of ``hardstate``."""
        sequence, term, vote = self._hard_state_slot
        if (hard_state.term, hard_state.vote) == (term, vote):
            return
        sequence += 1
        slot = statefiles.encode_hard_state_slot(sequence, hard_state.term, hard_state.vote)
        assert self._hard_state_file is not None
        try:
            self._hard_state_file.write_at((sequence % 2) * statefiles.SLOT_SIZE, slot)
            self._hard_state_file.datasync()
        except StorageFailure as e:
            raise self._guard(e) from e
        self._hard_state_slot = (sequence, hard_state.term, hard_state.vote)

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
            self._save_hard_state(hard_state)
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
                self.files.unlink(self._segments[0].path)
            except OSError as e:
                _log.warn("{path}: cannot remove: {e}", path=self._segments[0].path, e=e)
                break
            del self._segments[0]
            removed = True
        if removed:
            try:
                self.files.sync_dir(self._wal)
            except StorageFailure as e:
                raise self._guard(e) from e

    def save_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        # The snapshot file is written and synced without the mutex, which
        # `save` needs: a batch of entries (a few writes' acknowledgements)
        # never waits for megabytes of snapshot to reach the disk.  Only the
        # rename and the compaction are done under it.
        with self._snapshot_lock:
            with self._mutex:
                if meta.index < self._live().snapshot.index:
                    return
            tmp = self._snapshot_path + ".tmp"
            try:
                write_synced(self.files, tmp, statefiles.snapshot_head(meta, data), data)
            except StorageFailure as e:
                with self._mutex:
                    raise self._guard(e) from e
            with self._mutex:
                if meta.index < self._live().snapshot.index:
                    with contextlib.suppress(OSError):
                        self.files.unlink(tmp)  # overtaken by a newer snapshot meanwhile
                    return
                try:
                    replace_synced(self.files, tmp, self._snapshot_path)
                except StorageFailure as e:
                    raise self._guard(e) from e
                self._snapshot = meta
                self._compact(meta.index, meta.term)

    def read_snapshot(self) -> tuple[SnapshotMeta, bytes] | None:
        self._live()
        try:
            raw = self.files.read(self._snapshot_path)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StorageFailure(f"{self._snapshot_path}: {e}") from e
        return statefiles.decode_snapshot(self._snapshot_path, raw)

    def begin_recovery(self, reason: str) -> None:
        with self._mutex:
            self._live()
            try:
                write_atomically(self.files, os.path.join(self.path, RECOVERING), reason.encode())
            except StorageFailure as e:
                raise self._guard(e) from e

    def end_recovery(self) -> None:
        with self._mutex:
            self._live()
            marker = os.path.join(self.path, RECOVERING)
            try:
                if self.files.exists(marker):
                    self.files.unlink(marker)
                    self.files.sync_dir(self.path)
            except StorageFailure as e:
                raise self._guard(e) from e
            except OSError as e:
                raise self._guard(StorageFailure(f"{marker}: cannot remove: {e}")) from e
            _log.info("{path}: the log is whole again; recovery is over", path=self.path)

    def close(self) -> None:
        for handle in (self._file, self._hard_state_file):
            if handle is not None:
                handle.close()
        self._file = self._hard_state_file = None
        if self._lock is not None:
            self.files.unlock(self._lock)
            self._lock = None
        self._state = None


__all__ = ["CorruptDataError", "DiskStorage", "StorageFailure", "list_segments"]
