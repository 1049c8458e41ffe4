"""Tests for Raft's storage: the `IRaftStorage` contract, on disk and in memory."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from skydns.raft.core.messages import (
    Configuration,
    Entry,
    EntryKind,
    HardState,
    SnapshotMeta,
    decode_entry,
    encode_entry,
    encoded_size,
)
from skydns.raft.storage import disk as log_module
from skydns.raft.storage import files as disk
from skydns.raft.storage import statefiles, wal
from skydns.raft.storage.disk import DiskStorage
from skydns.raft.storage.errors import CorruptDataError, DataDirLocked, StorageFailure
from skydns.raft.storage.interface import IRaftStorage, Loaded
from skydns.raft.storage.memory import MemoryStorage

Storage = DiskStorage | MemoryStorage

if TYPE_CHECKING:
    _MixinBase = SynchronousTestCase
else:
    _MixinBase = object


def entries(first: int, last: int, term: int, tag: bytes = b"") -> list[Entry]:
    """Entries ``first``..``last`` of ``term``, each with data naming itself."""
    return [
        Entry(term, i, EntryKind.NORMAL, b"%d/%d%s" % (i, term, tag))
        for i in range(first, last + 1)
    ]


def data_dir(test: SynchronousTestCase) -> str:
    """A data dir path (not yet created) under a temporary dir removed after ``test``."""
    parent = tempfile.mkdtemp(prefix="skydns-log-")
    test.addCleanup(shutil.rmtree, parent, True)
    return os.path.join(parent, "data")


def segment_files(path: str) -> list[str]:
    directory = os.path.join(path, "wal")
    return [os.path.join(directory, n) for n in sorted(os.listdir(directory))]


class StorageContractMixin(_MixinBase):
    """What every `IRaftStorage` does; the subclasses say how to (re)open one."""

    def open(self) -> Storage:
        raise NotImplementedError

    def reopen(self, storage: Storage) -> Storage:
        """The storage as a restarted process sees it."""
        raise NotImplementedError

    def assert_loads(
        self,
        storage: Storage,
        hard_state: HardState,
        snapshot: SnapshotMeta | None,
        log: Sequence[Entry],
    ) -> None:
        self.assertEqual(storage.load(), Loaded(hard_state, snapshot, list(log)))

    def test_interface(self) -> None:
        """The storage provides `IRaftStorage`."""
        storage = self.open()
        verifyObject(IRaftStorage, storage)
        storage.close()

    def test_fresh(self) -> None:
        """A new storage holds the zero hard state, no snapshot, no entries."""
        storage = self.open()
        self.assertEqual(storage.load(), Loaded(HardState(), None, []))
        storage.close()

    def test_round_trip(self) -> None:
        """Saved hard state and entries come back after a restart, including
        a hard state saved alone and `None` leaving it unchanged."""
        storage = self.open()
        storage.load()
        storage.save(HardState(1, "n1", 0), [])
        storage.save(None, entries(1, 3, 1))
        storage.save(HardState(2, None, 3), entries(4, 4, 2))
        storage.save(None, [Entry(2, 5, EntryKind.NOOP), Entry(2, 6, EntryKind.CONFIG, b"c")])
        log = [*entries(1, 3, 1), *entries(4, 4, 2)]
        log += [Entry(2, 5, EntryKind.NOOP), Entry(2, 6, EntryKind.CONFIG, b"c")]
        self.assert_loads(self.reopen(storage), HardState(2, None, 3), None, log)

    def test_conflict_truncation(self) -> None:
        """An entry at or before the last index replaces the stored suffix
        from there on (Raft §5.3), also when the new suffix is shorter."""
        storage = self.open()
        storage.load()
        storage.save(HardState(1, "a", 0), entries(1, 5, 1))
        storage.save(HardState(2, "b", 0), entries(3, 3, 2, b"x"))
        storage = self.reopen(storage)
        self.assert_loads(
            storage, HardState(2, "b", 0), None, entries(1, 2, 1) + entries(3, 3, 2, b"x")
        )
        storage.save(None, entries(4, 6, 2))
        storage.save(None, entries(2, 2, 3))
        storage = self.reopen(storage)
        self.assert_loads(storage, HardState(2, "b", 0), None, entries(1, 1, 1) + entries(2, 2, 3))

    def test_rejects_bad_batches(self) -> None:
        """Batches that would leave a gap, are not consecutive, or rewrite
        compacted entries raise ValueError and change nothing."""
        storage = self.open()
        storage.load()
        storage.save(None, entries(1, 4, 1))
        storage.compact(2, 1)
        self.assertRaises(ValueError, storage.save, None, entries(6, 6, 1))
        self.assertRaises(ValueError, storage.save, None, [Entry(1, 5), Entry(1, 7)])
        self.assertRaises(ValueError, storage.save, HardState(9), entries(2, 3, 2))
        self.assert_loads(self.reopen(storage), HardState(), SnapshotMeta(2, 1), entries(3, 4, 1))

    def test_compact_keeps_later_entries(self) -> None:
        """Compacting to an entry the log holds drops only entries up to it."""
        storage = self.open()
        storage.load()
        storage.save(HardState(1), entries(1, 10, 1))
        storage.compact(6, 1)
        storage.compact(3, 1)  # older than the snapshot: ignored
        storage = self.reopen(storage)
        self.assert_loads(storage, HardState(1), SnapshotMeta(6, 1), entries(7, 10, 1))
        storage.save(None, entries(9, 9, 2))
        self.assert_loads(
            self.reopen(storage),
            HardState(1),
            SnapshotMeta(6, 1),
            [*entries(7, 8, 1), *entries(9, 9, 2)],
        )

    def test_compact_past_the_log(self) -> None:
        """A snapshot beyond the log, or one whose term the log does not
        match, replaces the whole log; the next entry follows the snapshot."""
        storage = self.open()
        storage.load()
        storage.save(None, entries(1, 5, 1))
        storage.compact(4, 2)
        self.assertRaises(ValueError, storage.save, None, entries(6, 6, 2))
        storage.save(None, entries(5, 5, 2))
        storage.compact(20, 3)
        self.assertRaises(ValueError, storage.save, None, entries(6, 6, 2))
        storage.save(None, entries(21, 22, 3))
        self.assert_loads(
            self.reopen(storage), HardState(), SnapshotMeta(20, 3), entries(21, 22, 3)
        )

    def test_snapshot(self) -> None:
        """A saved snapshot is read back with its configuration, and the log
        is compacted to it."""
        storage = self.open()
        storage.load()
        self.assertIsNone(storage.read_snapshot())
        storage.save(HardState(3, "a", 5), entries(1, 6, 3))
        meta = SnapshotMeta(5, 3, Configuration(frozenset({"a", "b", "c"}), frozenset({"d"})))
        storage.save_snapshot(meta, b"registry bytes")
        storage = self.reopen(storage)
        self.assert_loads(storage, HardState(3, "a", 5), meta, entries(6, 6, 3))
        self.assertEqual(storage.read_snapshot(), (meta, b"registry bytes"))
        storage.close()


class MemoryStorageTests(StorageContractMixin, SynchronousTestCase):
    def open(self) -> Storage:
        return MemoryStorage()

    def reopen(self, storage: Storage) -> Storage:
        return storage


class DiskStorageTests(StorageContractMixin, SynchronousTestCase):
    def setUp(self) -> None:
        self.path = data_dir(self)
        self.syncs = 0
        real = disk._datasync

        def counting(fd: int) -> None:
            self.syncs += 1
            real(fd)

        self.patch(disk, "_datasync", counting)

    def open(self, segment_size: int = 1 << 20) -> DiskStorage:  # type: ignore[override]
        storage = DiskStorage(self.path, segment_size)
        self.addCleanup(storage.close)
        return storage

    def reopen(self, storage: Storage) -> Storage:
        storage.close()
        return self.open()

    def loaded(self, segment_size: int = 1 << 20) -> DiskStorage:
        storage = self.open(segment_size)
        storage.load()
        return storage

    def test_group_commit(self) -> None:
        """One save costs one fdatasync however many entries it holds (and
        one more for the hard state file when the term or vote changes), and
        a save that changes nothing costs none."""
        storage = self.loaded()
        before = self.syncs
        storage.save(HardState(1, "a", 0), entries(1, 64, 1))
        self.assertEqual(self.syncs, before + 2, "the WAL, and the hard state file for the vote")
        before = self.syncs
        storage.save(HardState(1, "a", 0), [])
        storage.save(None, [])
        self.assertEqual(self.syncs, before)
        storage.save(HardState(1, "a", 9), entries(60, 70, 1, b"y"))
        self.assertEqual(self.syncs, before + 1)

    def test_segments_roll(self) -> None:
        """Past the segment size the log continues in a new segment named by
        sequence and first index; all of it loads back."""
        storage = self.loaded(segment_size=512)
        log: list[Entry] = []
        for batch in range(20):
            new = entries(batch * 5 + 1, batch * 5 + 5, 1, b"." * 40)
            storage.save(HardState(1, None, batch), new)
            log += new
        names = [os.path.basename(p) for p in segment_files(self.path)]
        self.assertGreater(len(names), 3)
        self.assertEqual(names[0], "0000000000000000-0000000000000001.wal")
        self.assertEqual([int(n[:16], 16) for n in names], list(range(len(names))))
        self.assert_loads(self.reopen(storage), HardState(1, None, 19), None, log)

    def test_compaction_removes_old_segments(self) -> None:
        """Compaction deletes segments wholly covered by the snapshot, keeps
        the rest, and the hard state survives the deletion."""
        storage = self.loaded(segment_size=512)
        storage.save(HardState(7, "x", 0), [])
        for batch in range(20):
            storage.save(None, entries(batch * 5 + 1, batch * 5 + 5, 7, b"." * 40))
        count = len(segment_files(self.path))
        storage.compact(90, 7)
        remaining = segment_files(self.path)
        self.assertLess(len(remaining), count)
        storage.save(None, entries(101, 101, 8))
        self.assert_loads(
            self.reopen(storage),
            HardState(7, "x", 0),
            SnapshotMeta(90, 7),
            [*entries(91, 100, 7, b"." * 40), *entries(101, 101, 8)],
        )

    def test_sync_failure_is_fatal(self) -> None:
        """A failed fdatasync raises `StorageFailure`, and so does every later
        call: the storage never pretends to have made anything durable."""
        storage = self.loaded()
        storage.save(None, entries(1, 1, 1))

        def failing(fd: int) -> None:
            raise OSError(errno.EIO, "I/O error")

        self.patch(disk, "_datasync", failing)
        error = self.assertRaises(StorageFailure, storage.save, None, entries(2, 2, 1))
        self.assertIn("fdatasync failed", str(error))
        self.patch(disk, "_datasync", os.fsync)
        self.assertRaises(StorageFailure, storage.save, None, entries(2, 2, 1))
        self.assertRaises(StorageFailure, storage.compact, 1, 1)

    def test_write_failure_is_fatal(self) -> None:
        """A failed write raises `StorageFailure` naming the segment."""
        storage = self.loaded()

        def failing(fd: int, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        self.patch(os, "write", failing)
        error = self.assertRaises(StorageFailure, storage.save, None, entries(1, 1, 1))
        self.assertIn("0000000000000000-0000000000000001.wal: write failed", str(error))

    def test_lock(self) -> None:
        """A second storage cannot open a data dir that is in use, and says
        which; once the first closes, it can."""
        first = self.loaded()
        second = DiskStorage(self.path)
        error = self.assertRaises(DataDirLocked, second.load)
        self.assertIn(os.path.abspath(self.path), str(error))
        self.assertIn(str(os.getpid()), str(error))
        first.close()
        self.assertEqual(second.load(), Loaded(HardState(), None, []))
        second.close()

    def test_data_dir_that_is_a_file(self) -> None:
        """``--data-dir`` naming a file: a clear refusal, and the file is left alone."""
        path = self.path + ".file"
        with open(path, "w") as f:
            f.write("not a data dir")
        error = self.assertRaises(StorageFailure, DiskStorage(path).load)
        self.assertEqual(str(error), f"data dir {path} is not a directory")
        with open(path) as f:
            self.assertEqual(f.read(), "not a data dir")

    def test_foreign_file(self) -> None:
        """A file in wal/ that is not a segment stops the node, named."""
        self.loaded().close()
        stray = os.path.join(self.path, "wal", "notes.txt")
        with open(stray, "w") as f:
            f.write("hello")
        error = self.assertRaises(CorruptDataError, self.open().load)
        self.assertEqual(error.path, stray)
        self.assertIn("foreign file", str(error))

    def test_leftover_temporary_segment(self) -> None:
        """A segment whose creation a crash interrupted (still .tmp) is
        removed and the log loads."""
        storage = self.loaded()
        storage.save(None, entries(1, 2, 1))
        storage.close()
        tmp = os.path.join(self.path, "wal", wal.segment_name(1, 3) + ".tmp")
        with open(tmp, "wb") as f:
            f.write(b"half a hea")
        self.assert_loads(self.open(), HardState(), None, entries(1, 2, 1))
        self.assertFalse(os.path.exists(tmp))

    def rolled(self) -> list[str]:
        storage = self.loaded(segment_size=256)
        for batch in range(12):
            storage.save(None, entries(batch * 3 + 1, batch * 3 + 3, 1, b"." * 40))
        storage.close()
        files = segment_files(self.path)
        self.assertGreater(len(files), 3)
        return files

    def test_missing_middle_segment(self) -> None:
        """A gap in the segment sequence stops the node."""
        files = self.rolled()
        os.unlink(files[1])
        error = self.assertRaises(CorruptDataError, self.open().load)
        self.assertEqual(error.path, files[2])
        self.assertIn(f"segment {1:016x} is missing", str(error))

    def test_missing_first_segment(self) -> None:
        """Losing the oldest segment when no snapshot covers it stops the node."""
        files = self.rolled()
        os.unlink(files[0])
        error = self.assertRaises(CorruptDataError, self.open().load)
        self.assertEqual(error.path, files[1])
        self.assertIn("are missing", str(error))

    def test_swapped_segment(self) -> None:
        """A segment that does not continue the one before it stops the node."""
        files = self.rolled()
        with open(files[1], "rb") as f:
            second = f.read()
        with open(files[2], "rb") as f:
            third = f.read()
        # The third segment's frames under the second's name and sequence.
        with open(files[1], "wb") as f:
            f.write(second[: wal.SEGMENT_HEADER_SIZE] + third[wal.SEGMENT_HEADER_SIZE :])
        error = self.assertRaises(CorruptDataError, self.open().load)
        self.assertEqual(error.path, files[1])
        self.assertEqual(error.offset, wal.SEGMENT_HEADER_SIZE)

    def test_bad_magic(self) -> None:
        """A segment that does not start with the WAL magic stops the node,
        at offset 0, even if it is the last one."""
        storage = self.loaded()
        storage.save(None, entries(1, 2, 1))
        storage.close()
        [path] = segment_files(self.path)
        with open(path, "r+b") as f:
            f.write(b"GARBAGE!")
        error = self.assertRaises(CorruptDataError, self.open().load)
        self.assertEqual((error.path, error.offset), (path, 0))
        self.assertIn("bad magic", str(error))

    def test_unknown_version(self) -> None:
        """A segment of a format version this code does not know stops the node."""
        self.loaded().close()
        [path] = segment_files(self.path)
        head = b"SKYDWAL\n\x00\x09" + bytes(8)
        with open(path, "r+b") as f:
            f.write(head + wal.zlib.crc32(head).to_bytes(4, "big"))
        error = self.assertRaises(CorruptDataError, self.open().load)
        self.assertIn("unsupported format version 9", str(error))

    def test_snapshot_without_wal(self) -> None:
        """A snapshot with no WAL segments is damage, not a fresh node."""
        storage = self.loaded()
        storage.save_snapshot(SnapshotMeta(3, 1), b"s")
        storage.close()
        for path in segment_files(self.path):
            os.unlink(path)
        self.assertRaises(CorruptDataError, self.open().load)

    def test_crash_between_snapshot_and_compaction(self) -> None:
        """A snapshot file ahead of the log's compaction point (a crash came
        between the two) is honoured at load, durably."""
        storage = self.loaded()
        storage.save(HardState(2), entries(1, 8, 2))
        storage.close()
        meta = SnapshotMeta(5, 2, Configuration(frozenset({"a"})))
        disk.write_atomically(disk.OSFiles(), os.path.join(self.path, "snapshot"),
                              statefiles.encode_snapshot(meta, b"s"))  # fmt: skip
        storage = self.open()
        self.assert_loads(storage, HardState(2), meta, entries(6, 8, 2))
        self.assert_loads(self.reopen(storage), HardState(2), meta, entries(6, 8, 2))

    def test_entries_saved_while_a_snapshot_is_written(self) -> None:
        """A snapshot written in a thread (megabytes, fsync'ed) does not hold
        up saving a batch of entries: the batch is durable while the
        snapshot file is still being written, and the snapshot then
        compacts the log as usual."""
        storage = self.loaded()
        storage.save(HardState(1, "a", 0), entries(1, 8, 1))
        writing, release = threading.Event(), threading.Event()
        real = disk.write_synced

        def slow(files: disk.IFiles, path: str, *pieces: bytes) -> None:
            writing.set()
            self.assertTrue(release.wait(10))
            real(files, path, *pieces)

        self.patch(log_module, "write_synced", slow)
        meta = SnapshotMeta(5, 1, Configuration(frozenset({"a"})))
        thread = threading.Thread(target=storage.save_snapshot, args=(meta, b"state"))
        thread.start()
        try:
            self.assertTrue(writing.wait(10))
            storage.save(HardState(1, "a", 9), entries(9, 12, 1))  # not blocked
        finally:
            release.set()
            thread.join(10)
        self.assertFalse(thread.is_alive())
        self.assert_loads(self.reopen(storage), HardState(1, "a", 9), meta, entries(6, 12, 1))

    def test_damaged_snapshot(self) -> None:
        """A snapshot file with a bad checksum stops the node, named."""
        storage = self.loaded()
        storage.save(None, entries(1, 3, 1))
        storage.save_snapshot(SnapshotMeta(2, 1), b"state machine")
        storage.close()
        path = os.path.join(self.path, "snapshot")
        with open(path, "r+b") as f:
            f.seek(-3, os.SEEK_END)
            f.write(b"XXX")
        error = self.assertRaises(CorruptDataError, self.open().load)
        self.assertEqual(error.path, path)

    def test_interrupted_compaction(self) -> None:
        """Segments a compaction meant to delete but which a crash left behind
        are replayed harmlessly: the log loads as compacted."""
        storage = self.loaded(segment_size=256)
        for batch in range(12):
            storage.save(HardState(1, "a", batch), entries(batch * 3 + 1, batch * 3 + 3, 1))
        kept = {}
        for path in segment_files(self.path):
            with open(path, "rb") as f:
                kept[path] = f.read()
        storage.compact(30, 1)
        storage.save(None, entries(37, 37, 2))
        storage.close()
        gone = set(kept) - set(segment_files(self.path))
        self.assertTrue(gone)
        for path in gone:
            with open(path, "wb") as f:
                f.write(kept[path])
        expected = (
            HardState(1, "a", 11),
            SnapshotMeta(30, 1),
            entries(31, 36, 1) + entries(37, 37, 2),
        )
        self.assert_loads(self.open(), *expected)


#: Operations on a storage: ("save", new term, entries overwritten, count,
#: payload size), ("compact", offset from the snapshot, matching term) or
#: ("restart",).
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("save"),
            st.booleans(),
            st.integers(0, 4),
            st.integers(0, 6),
            st.integers(0, 50),
        ),
        st.tuples(st.just("compact"), st.integers(1, 12), st.booleans()),
        st.tuples(st.just("restart")),
    ),
    max_size=40,
)


class DiskMatchesMemoryTests(SynchronousTestCase):
    def test_compaction_at_a_rewritten_segment_start(self) -> None:
        """A segment that begins by rewriting an entry its predecessor held,
        then compactions up to just before it once that predecessor is
        deleted: the entries after stay (a replay once took the unknown term
        before the rewrite for a mismatch and dropped the whole log)."""
        path = data_dir(self)
        storage = DiskStorage(path, segment_size=200)
        storage.load()
        storage.save(None, entries(1, 3, 1))
        storage.save(None, entries(3, 3, 1))  # the rewrite opens a new segment
        storage.save(None, entries(4, 4, 1))
        storage.compact(2, 1)
        storage.compact(3, 1)
        storage.close()
        storage = DiskStorage(path, segment_size=200)
        loaded = storage.load()
        storage.close()
        self.assertEqual(loaded.snapshot, SnapshotMeta(3, 1))
        self.assertEqual(loaded.entries, entries(4, 4, 1))

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(operations=operations)
    def test_same_as_memory(self, operations: list[tuple[object, ...]]) -> None:
        """Any sequence of saves (with conflict truncation), compactions and
        restarts leaves a small-segmented `DiskStorage` loading exactly what
        `MemoryStorage` holds."""
        path = data_dir(self)
        model = MemoryStorage()
        storage = DiskStorage(path, segment_size=200)
        storage.load()
        term = 1
        try:
            for operation in operations:
                held = model.load()
                snapshot, log = held.snapshot, held.entries
                base = snapshot.index if snapshot else 0
                last = log[-1].index if log else base
                if operation[0] == "save":
                    _, new_term, back, count, size = operation
                    assert isinstance(back, int) and isinstance(count, int)
                    assert isinstance(size, int)
                    term += 1 if new_term else 0
                    # A conflict never cuts below the commit index (Raft §5.3).
                    first = max(base + 1, held.hard_state.commit + 1, last + 1 - back)
                    batch = entries(first, first + count - 1, term, b"d" * size)
                    hard_state = HardState(term, "n", first - 1) if new_term else None
                    storage.save(hard_state, batch)
                    model.save(hard_state, batch)
                elif operation[0] == "compact":
                    _, offset, matching = operation
                    assert isinstance(offset, int)
                    index = base + offset
                    if not matching:
                        # A snapshot that replaces a divergent log comes only
                        # past the commit index (the core ignores older ones).
                        index = max(index, held.hard_state.commit)
                    terms = {entry.index: entry.term for entry in log}
                    at = terms.get(index, term) if matching else term + 7
                    storage.compact(index, at)
                    model.compact(index, at)
                else:
                    storage.close()
                    storage = DiskStorage(path, segment_size=200)
                    self.assertEqual(storage.load(), model.load())
            storage.close()
            storage = DiskStorage(path, segment_size=200)
            self.assertEqual(storage.load(), model.load())
        finally:
            storage.close()


class EntryEncodingTests(SynchronousTestCase):
    @given(
        term=st.integers(0, 2**63 - 1), index=st.integers(0, 2**63 - 1),
        kind=st.sampled_from(EntryKind), data=st.binary(max_size=300),
    )  # fmt: skip
    def test_round_trip_and_size(self, term: int, index: int, kind: EntryKind, data: bytes) -> None:
        """An entry survives encoding, and `encoded_size` (what batches are
        bounded by) is the encoded length."""
        entry = Entry(term, index, kind, data)
        encoded = encode_entry(entry)
        self.assertEqual(decode_entry(encoded), entry)
        self.assertEqual(encoded_size(entry), len(encoded))
