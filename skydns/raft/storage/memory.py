"""`IRaftStorage` in memory, for unit tests: everything saved is "durable" at
once, and a crash is modelled by building a new node on the same object.
The same `LogState` rules as the disk storage apply."""

from __future__ import annotations

from collections.abc import Sequence

from zope.interface import implementer

from skydns.raft.core.messages import Entry, HardState, SnapshotMeta
from skydns.raft.storage.interface import IRaftStorage, Loaded
from skydns.raft.storage.logstate import LogState


@implementer(IRaftStorage)
class MemoryStorage:
    def __init__(self) -> None:
        self._state = LogState(entries=[])
        self._snapshot: tuple[SnapshotMeta, bytes] | None = None
        self.saves = 0
        self.recovering: str | None = None

    def load(self) -> Loaded:
        assert self._state.entries is not None
        saved = self._snapshot[0] if self._snapshot else None
        meta = self._state.snapshot_meta(saved)
        return Loaded(self._state.hard_state, meta, list(self._state.entries), self.recovering)

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

    def begin_recovery(self, reason: str) -> None:
        self.recovering = reason

    def end_recovery(self) -> None:
        self.recovering = None

    def close(self) -> None:
        pass
