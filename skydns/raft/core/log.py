"""The core's in-memory view of the Raft log.

It mirrors what the durable log holds plus what has been appended but not yet
handed to the adapter for persistence (everything from ``unstable``).  The
log may start after a snapshot: ``entries[0]`` is then at ``snapshot.index +
1`` and ``snapshot.term`` answers for the entry just before it.
"""

from __future__ import annotations

from attrs import define, field

from skydns.raft.core.messages import Entry, SnapshotMeta, encoded_size


class LogInvariantError(AssertionError):
    """The core was asked to do something that would break Raft's safety."""


@define
class RaftLog:
    snapshot: SnapshotMeta = field(factory=SnapshotMeta)
    entries: list[Entry] = field(factory=list)
    committed: int = 0
    applied: int = 0
    #: The first index not yet handed out for persistence in a Ready.
    unstable: int = 1

    @classmethod
    def restore(cls, snapshot: SnapshotMeta, entries: list[Entry], committed: int) -> RaftLog:
        first = snapshot.index + 1
        for offset, entry in enumerate(entries):
            if entry.index != first + offset:
                raise LogInvariantError(f"restored log has a gap at {entry.index}")
        last = snapshot.index + len(entries)
        committed = max(committed, snapshot.index)
        if committed > last:
            raise LogInvariantError(f"commit {committed} is past the last index {last}")
        return cls(snapshot, list(entries), committed, snapshot.index, last + 1)

    def first_index(self) -> int:
        return self.snapshot.index + 1

    def last_index(self) -> int:
        return self.snapshot.index + len(self.entries)

    def term(self, index: int) -> int | None:
        """The term of the entry at ``index``; None if compacted or absent."""
        if index == self.snapshot.index:
            return self.snapshot.term
        if index < self.snapshot.index or index > self.last_index():
            return None
        return self.entries[index - self.snapshot.index - 1].term

    def last_term(self) -> int:
        term = self.term(self.last_index())
        assert term is not None
        return term

    def entry(self, index: int) -> Entry:
        return self.entries[index - self.snapshot.index - 1]

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft §5.4.1: is a candidate's log at least as up to date as ours?"""
        mine = self.last_term()
        return last_term > mine or (last_term == mine and last_index >= self.last_index())

    def slice(self, low: int, max_bytes: int) -> list[Entry]:
        """Entries from ``low`` on, at most ``max_bytes`` (but at least one)."""
        out: list[Entry] = []
        size = 0
        for index in range(low, self.last_index() + 1):
            entry = self.entry(index)
            size += encoded_size(entry)
            if out and size > max_bytes:
                break
            out.append(entry)
        return out

    def append(self, entries: list[Entry]) -> None:
        """Add entries at the end, or replace a conflicting suffix."""
        if not entries:
            return
        after = entries[0].index
        if after <= self.committed:
            raise LogInvariantError(f"would overwrite committed index {after}")
        if after > self.last_index() + 1:
            raise LogInvariantError(f"gap: appending {after} after {self.last_index()}")
        del self.entries[after - self.snapshot.index - 1 :]
        self.entries.extend(entries)
        self.unstable = min(self.unstable, after)

    def find_conflict(self, entries: tuple[Entry, ...]) -> int:
        """The first of ``entries`` we lack or hold with another term; 0 if none."""
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Our last entry at or below ``index`` whose term is at most ``term``."""
        index = min(index, self.last_index())
        while True:
            mine = self.term(index)
            if mine is None:
                return index, 0
            if mine <= term:
                return index, mine
            index -= 1

    def maybe_append(
        self, prev_index: int, prev_term: int, commit: int, entries: tuple[Entry, ...]
    ) -> int | None:
        """Follower side of AppendEntries (Raft §5.3); None if ``prev`` does not match.

        Entries we already hold are left alone: only a real conflict
        truncates, so a late duplicate cannot erase newer entries.
        """
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            if conflict <= self.committed:
                raise LogInvariantError(f"conflict at committed index {conflict}")
            self.append(list(entries[conflict - prev_index - 1 :]))
        self.commit_to(min(commit, last_new))
        return last_new

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise LogInvariantError(f"commit {index} is past the last index")
            self.committed = index

    def unstable_entries(self) -> list[Entry]:
        if self.unstable > self.last_index():
            return []
        return self.entries[self.unstable - self.snapshot.index - 1 :]

    def restore_snapshot(self, meta: SnapshotMeta) -> None:
        """Replace the whole log with a leader's snapshot (Raft §7)."""
        if meta.index <= self.committed:
            raise LogInvariantError(f"snapshot {meta.index} is not past commit {self.committed}")
        self.snapshot = meta
        self.entries = []
        self.committed = meta.index
        self.applied = meta.index
        self.unstable = meta.index + 1

    def compact(self, meta: SnapshotMeta) -> None:
        """Forget the entries up to ``meta.index``: a stored snapshot holds them."""
        if meta.index <= self.snapshot.index:
            return
        if meta.index > self.applied or meta.index >= self.unstable:
            raise LogInvariantError(f"cannot compact to {meta.index}: not applied and stable")
        if self.term(meta.index) != meta.term:
            raise LogInvariantError(f"snapshot {meta.index} does not end at term {meta.term}")
        del self.entries[: meta.index - self.snapshot.index]
        self.snapshot = meta

    def next_committed(self) -> list[Entry]:
        """Committed entries not yet handed out for applying."""
        low = max(self.applied + 1, self.first_index())
        if low > self.committed:
            return []
        start = low - self.snapshot.index - 1
        return self.entries[start : self.committed - self.snapshot.index]
