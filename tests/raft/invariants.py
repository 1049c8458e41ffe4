"""Raft's safety properties (paper Figure 3), checked after every simulation step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from skydns.raft.core.messages import Entry
from skydns.raft.core.raft import RaftCore, Ready, Role

if TYPE_CHECKING:
    from tests.raft.sim import SimNode


class SafetyViolation(AssertionError):
    """A Raft invariant broke; the message says which and where."""


class Invariants:
    def __init__(self) -> None:
        self.leaders: dict[int, str] = {}  # term -> leader (election safety)
        #: (node, term) -> (snapshot index, entries): leader append-only.
        self.leader_logs: dict[tuple[str, int], tuple[int, list[Entry]]] = {}
        self.shape: dict[tuple[int, int], tuple[int | None, int, bytes]] = {}  # log matching
        self.committed: dict[int, Entry] = {}  # every index known committed
        self.applied: dict[int, Entry] = {}  # state machine safety
        self.seen_commit: dict[tuple[str, int], int] = {}  # (node, incarnation) -> commit
        self.checked_leaders: set[tuple[str, int]] = set()

    def fail(self, what: str) -> None:
        raise SafetyViolation(what)

    def on_ready(self, node: str, core: RaftCore, rd: Ready) -> None:
        """Log matching: one (index, term) pair always names the same entry
        with the same predecessor term."""
        for e in rd.entries:
            shape = (core.log.term(e.index - 1), int(e.kind), e.data)
            known = self.shape.setdefault((e.index, e.term), shape)
            if known != shape:
                self.fail(f"log matching: {node} holds a different entry at {e.index}/{e.term}")

    def on_apply(self, node: str, entry: Entry) -> None:
        known = self.applied.setdefault(entry.index, entry)
        if known != entry:
            self.fail(
                f"state machine safety: {node} applied {entry} at {entry.index}, "
                f"another node applied {known}"
            )
        committed = self.committed.get(entry.index)
        if committed is not None and committed != entry:
            self.fail(f"{node} applied {entry}, but {committed} was committed there")

    def check(self, nodes: dict[str, SimNode]) -> None:
        for node in nodes.values():
            core = node.core
            if core is None:
                continue
            log = core.log
            if log.committed > log.last_index():
                self.fail(f"{node.id}: commit {log.committed} past last index {log.last_index()}")
            if log.applied > log.committed:
                self.fail(f"{node.id}: applied {log.applied} past commit {log.committed}")
            key = (node.id, node.incarnation)
            before = self.seen_commit.get(key, log.snapshot.index)
            if log.committed < before:
                self.fail(f"{node.id}: commit index went back from {before} to {log.committed}")
            if log.committed > before:
                for index in range(max(before, log.snapshot.index) + 1, log.committed + 1):
                    entry = log.entry(index)
                    known = self.committed.setdefault(index, entry)
                    if known != entry:
                        self.fail(
                            f"committed entries differ at {index}: {node.id} has {entry},"
                            f" earlier {known}"
                        )
                self.seen_commit[key] = log.committed
            if core.role is Role.LEADER:
                self._check_leader(node.id, core)

    def _check_leader(self, node: str, core: RaftCore) -> None:
        term = core.term
        other = self.leaders.setdefault(term, node)
        if other != node:
            self.fail(f"election safety: {other} and {node} both lead term {term}")
        key = (node, term)
        entries = core.log.entries
        if key not in self.checked_leaders:
            # Leader completeness: everything committed so far is in its log.
            self.checked_leaders.add(key)
            for index, entry in self.committed.items():
                if index > core.log.snapshot.index and (
                    index > core.log.last_index() or core.log.entry(index) != entry
                ):
                    self.fail(
                        f"leader completeness: {node} leads term {term} without committed {entry}"
                    )
        offset = core.log.snapshot.index
        old = self.leader_logs.get(key)
        if old is not None:
            # Compaction may drop entries from the front: compare from ``offset``.
            old_offset, old_entries = old
            tail = old_entries[max(0, offset - old_offset) :]
            if len(entries) < len(tail) or entries[: len(tail)] != tail:
                self.fail(f"leader append-only: {node} changed its log in term {term}")
        if old is None or old[0] != offset or len(old[1]) != len(entries):
            self.leader_logs[key] = (offset, list(entries))
