"""Raft's safety properties (paper Figure 3, thesis ch. 4), checked on the
real nodes of a `tests.raft.world.World` after every event.

- election safety: at most one leader per term, ever;
- votes: a server's durable votes name at most one candidate per term, and
  every leader was elected by a quorum of the voters of the configuration
  it holds, counted from their durable votes;
- leader append-only, log matching (one (index, term) always names the same
  entry with the same predecessor), leader completeness (a new leader holds
  every entry known committed);
- state machine safety: no two nodes apply different entries at an index,
  and no node applies an entry it does not know committed;
- commit never past the log's end, never backwards within one run of a
  process; at most one membership change in flight on a leader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from skydns.raft.core.messages import Entry, EntryKind, HardState
from skydns.raft.core.raft import RaftCore
from skydns.raft.core.ready import Role

if TYPE_CHECKING:
    from tests.raft.kv import KVMachine
    from tests.raft.world import Host, World


class SafetyViolation(AssertionError):
    """A Raft invariant broke; the message says which and where."""


class Invariants:
    def __init__(self, world: World) -> None:
        self.world = world
        self.leaders: dict[int, str] = {}  # term -> leader
        #: (node, term) -> (snapshot index, entries) while it leads that term.
        self.leader_logs: dict[tuple[str, int], tuple[int, list[Entry]]] = {}
        #: (index, term) -> (previous term, kind, data): log matching.
        self.shape: dict[tuple[int, int], tuple[int | None, int, bytes]] = {}
        self.committed: dict[int, Entry] = {}
        self.applied: dict[int, bytes] = {}
        #: (node, incarnation) -> the highest commit index seen.
        self.seen_commit: dict[tuple[str, int], int] = {}
        #: node -> term -> the candidate its durable hard state voted for.
        self.votes: dict[str, dict[int, str]] = {}
        #: (leader, term) whose election was checked.
        self.elections: set[tuple[str, int]] = set()
        self.checked_leaders: set[tuple[str, int]] = set()

    def fail(self, what: str) -> None:
        raise SafetyViolation(what)

    # --- hooks ------------------------------------------------------------------

    def watch(self, host: Host, machine: KVMachine) -> None:
        """Observe what ``host``'s state machine applies (its node replays
        the log into it before it is up)."""

        def applied(index: int, command: bytes) -> None:
            core = host.node.core if host.node is not None else None
            self.on_apply(host.id, core, index, command)

        machine.on_apply = applied

    def saving(self, node: str, core: RaftCore, entries: Sequence[Entry]) -> None:
        """``entries`` are about to be made durable: log matching."""
        for entry in entries:
            shape = (core.log.term(entry.index - 1), int(entry.kind), entry.data)
            known = self.shape.setdefault((entry.index, entry.term), shape)
            if known != shape:
                self.fail(f"log matching: {node} holds a different entry at "
                          f"{entry.index}/{entry.term}")  # fmt: skip

    def durable_vote(self, node: str, hard_state: HardState) -> None:
        if hard_state.vote is None:
            return
        votes = self.votes.setdefault(node, {})
        before = votes.setdefault(hard_state.term, hard_state.vote)
        if before != hard_state.vote:
            self.fail(f"{node} voted for {before} and for {hard_state.vote} in term "
                      f"{hard_state.term}")  # fmt: skip

    def on_apply(self, node: str, core: RaftCore | None, index: int, command: bytes) -> None:
        if core is not None and index > core.log.committed:
            self.fail(f"{node} applies entry {index}, past its commit index {core.log.committed}")
        known = self.applied.setdefault(index, command)
        if known != command:
            self.fail(f"state machine safety: {node} applied {command!r} at {index}, another "
                      f"node applied {known!r}")  # fmt: skip
        committed = self.committed.get(index)
        if committed is not None and not committed.data.endswith(command):
            self.fail(f"{node} applied {command!r} at {index}, but {committed} was committed")

    def crashed(self, host: Host) -> None:
        pass

    # --- after every event ------------------------------------------------------

    def check(self) -> None:
        for host in self.world.hosts.values():
            if host.node is None:
                continue
            core = host.node.core
            log = core.log
            if log.committed > log.last_index():
                self.fail(f"{host.id}: commit {log.committed} past last index {log.last_index()}")
            key = (host.id, host.incarnation)
            before = self.seen_commit.get(key, log.snapshot.index)
            if log.committed < before:
                self.fail(f"{host.id}: commit index went back from {before} to {log.committed}")
            if log.committed > before:
                for index in range(max(before, log.snapshot.index) + 1, log.committed + 1):
                    entry = log.entry(index)
                    known = self.committed.setdefault(index, entry)
                    if known != entry:
                        self.fail(f"committed entries differ at {index}: {host.id} has "
                                  f"{entry}, earlier {known}")  # fmt: skip
                self.seen_commit[key] = log.committed
            if core.role is Role.LEADER:
                self._check_leader(host.id, core)

    def _check_leader(self, node: str, core: RaftCore) -> None:
        term = core.term
        other = self.leaders.setdefault(term, node)
        if other != node:
            self.fail(f"election safety: {other} and {node} both lead term {term}")
        key = (node, term)
        if key not in self.elections and self.votes.get(node, {}).get(term) == node:
            # Its own vote is durable, so the grants it counted were too.
            self.elections.add(key)
            voters = sorted(core.config.voters)
            granted = [v for v in voters if self.votes.get(v, {}).get(term) == node]
            if len(granted) < len(voters) // 2 + 1:
                self.fail(f"{node} leads term {term} with the durable votes of {granted} "
                          f"only, of {voters}")  # fmt: skip
        if key not in self.checked_leaders:
            # Leader completeness: everything committed so far is in its log.
            self.checked_leaders.add(key)
            for index, entry in self.committed.items():
                if index > core.log.snapshot.index and (
                    index > core.log.last_index() or core.log.entry(index) != entry
                ):
                    self.fail(f"leader completeness: {node} leads term {term} without "
                              f"committed {entry}")  # fmt: skip
        offset = core.log.snapshot.index
        entries = core.log.entries
        old = self.leader_logs.get(key)
        if old is not None:
            old_offset, old_entries = old
            tail = old_entries[max(0, offset - old_offset) :]
            if len(entries) < len(tail) or entries[: len(tail)] != tail:
                self.fail(f"leader append-only: {node} changed its log in term {term}")
        if old is None or old[0] != offset or len(old[1]) != len(entries):
            self.leader_logs[key] = (offset, list(entries))
        uncommitted = core.log.entries[core.log.committed - offset :]
        if sum(1 for e in uncommitted if e.kind is EntryKind.CONFIG) > 1:
            self.fail(f"{node} leads with more than one membership change in flight")
