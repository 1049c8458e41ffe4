"""The rules of a stored Raft log, shared by every `IRaftStorage`.

Kept apart from any I/O so the in-memory and on-disk storages, and the WAL
replay, apply exactly the same checks.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from itertools import pairwise

from attrs import define, field

from skydns.raft.core.messages import Entry, HardState, SnapshotMeta


@define
class LogState:
    """The shape of the stored log, and the rules each change must follow.

    Entries run from ``base_index + 1``.  While a WAL is being replayed,
    ``base_index`` may be ahead of the snapshot (the entries between were in
    a deleted segment and must be covered by a later compaction); otherwise
    it equals ``snapshot.index``.  Methods raise ValueError on a change that
    breaks a rule.
    """

    hard_state: HardState = HardState()
    snapshot: SnapshotMeta = SnapshotMeta()
    base_index: int = 0
    base_term: int = 0
    #: True while replaying a first segment that cut its log back into the
    #: range an earlier (deleted) segment held: the term at ``base_index`` is
    #: then unknown, not a mismatch.
    base_unknown: bool = False
    terms: array[int] = field(factory=lambda: array("Q"))
    #: The entries themselves, kept only when someone will ask for them.
    entries: list[Entry] | None = None

    def last_index(self) -> int:
        return self.base_index + len(self.terms)

    def last_term(self) -> int:
        return self.terms[-1] if self.terms else self.base_term

    def term_at(self, index: int) -> int | None:
        if index == self.base_index:
            return self.base_term
        if self.base_index < index <= self.last_index():
            return self.terms[index - self.base_index - 1]
        return None

    def snapshot_meta(self, saved: SnapshotMeta | None) -> SnapshotMeta | None:
        """What the log starts after: ``saved`` (with its configuration) if it
        is the snapshot the log was compacted to."""
        if self.snapshot.index == 0:
            return None
        if saved is not None and saved.index == self.snapshot.index:
            return saved
        return self.snapshot

    def plan_save(self, entries: Sequence[Entry]) -> int | None:
        """Check a batch; return the index the stored log must be cut at first."""
        if not entries:
            return None
        for before, after in pairwise(entries):
            if after.index != before.index + 1:
                raise ValueError(f"entries not consecutive: {before.index} then {after.index}")
        first = entries[0].index
        if first <= self.snapshot.index:
            raise ValueError(f"entry {first} is already compacted into the snapshot")
        if first > self.last_index() + 1:
            raise ValueError(f"entry {first} leaves a gap after {self.last_index()}")
        return first if first <= self.last_index() else None

    def truncate(self, index: int) -> None:
        """Drop the entries from ``index`` on."""
        if index <= self.snapshot.index or index > self.last_index():
            raise ValueError(f"cannot truncate at {index}: log is {self._describe()}")
        if index - 1 < self.base_index:
            # Only while replaying a first segment whose start was compacted.
            self.base_index, self.base_term = index - 1, 0
            self.base_unknown = True
            del self.terms[:]
            if self.entries is not None:
                del self.entries[:]
            return
        keep = index - 1 - self.base_index
        del self.terms[keep:]
        if self.entries is not None:
            del self.entries[keep:]

    def append(self, entry: Entry) -> None:
        if entry.index != self.last_index() + 1:
            raise ValueError(f"entry {entry.index} does not follow {self._describe()}")
        self.terms.append(entry.term)
        if self.entries is not None:
            self.entries.append(entry)

    def compact(self, index: int, term: int) -> None:
        if index <= self.snapshot.index:
            return
        self.snapshot = SnapshotMeta(index, term)
        if index < self.base_index:
            return  # replay: still inside the range an earlier segment held
        if self.term_at(index) == term or (index == self.base_index and self.base_unknown):
            # A compaction the writer found not matching started a new
            # segment and deleted this one; replayed, it would fail the next
            # segment's base check, never keep a divergent log in silence.
            drop = index - self.base_index
        else:
            drop = len(self.terms)  # §7: a snapshot we do not match replaces the log
        del self.terms[:drop]
        if self.entries is not None:
            del self.entries[:drop]
        self.base_index, self.base_term = index, term
        self.base_unknown = False

    def _describe(self) -> str:
        return f"({self.base_index}, {self.last_index()}] after snapshot {self.snapshot.index}"
