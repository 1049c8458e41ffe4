"""Raft's safety properties (paper Figure 3, thesis ch. 4), checked on the
real nodes of a `tests.raft.world.World` after every event.

- election safety: at most one leader per term, ever;
- votes: a server's durable votes name at most one candidate per term, and
  every leader was elected by a quorum of the voters of the configuration
  it holds, counted from their durable votes;
- leader append-only, log matching (one (index, term) always names the same
  entry with the same predecessor), leader completeness (a leader of term T
  holds every entry committed in an earlier term);
- state machine safety: no two nodes apply different entries at an index,
  and no node applies an entry it does not know committed;
- commit never past the log's end, never backwards within one run of a
  process; at most one membership change in flight on a leader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from skydns.raft.core.messages import (
    AppendEntriesResponse,
    Entry,
    EntryKind,
    HardState,
    Message,
    RequestVoteResponse,
)
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
        #: index -> a term no earlier than the one in which it was committed.
        self.committed_in: dict[int, int] = {}
        self.applied: dict[int, bytes] = {}
        #: (node, incarnation) -> the highest commit index seen.
        self.seen_commit: dict[tuple[str, int], int] = {}
        #: node -> term -> the candidate its durable hard state voted for.
        self.votes: dict[str, dict[int, str]] = {}
        #: node -> the highest term its durable hard state holds.
        self.durable_terms: dict[str, int] = {}
        #: (voter, term) -> the candidate it sent a granted vote to.
        self.grants: dict[tuple[str, int], str] = {}
        #: (leader, term) whose election was checked.
        self.elections: set[tuple[str, int]] = set()
        self.checked_leaders: set[tuple[str, int]] = set()
        #: node -> (term, index): the last entry it acknowledged in that term.
        self.acked: dict[str, tuple[int, int]] = {}
        #: applied index -> the state (data and session table) a replica
        #: holds once it applied that far.
        self.states: dict[int, Any] = {}
        #: node -> (incarnation, applied index) of its state last compared.
        self.last_state: dict[str, tuple[int, int]] = {}
        #: The first violation noted from inside a node's call.
        self.noted: str | None = None

    def fail(self, what: str) -> None:
        raise SafetyViolation(what)

    def note(self, what: str) -> None:
        """A violation seen inside a node's own call (a save, an apply),
        raised at the next `check` rather than into the node's code."""
        if self.noted is None:
            self.noted = what

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
                self.note(f"log matching: {node} holds a different entry at "
                          f"{entry.index}/{entry.term}")  # fmt: skip

    def durable_vote(self, node: str, hard_state: HardState) -> None:
        self.durable_terms[node] = max(self.durable_terms.get(node, 0), hard_state.term)
        if hard_state.vote is None:
            return
        votes = self.votes.setdefault(node, {})
        before = votes.setdefault(hard_state.term, hard_state.vote)
        if before != hard_state.vote:
            self.note(f"{node} voted for {before} and for {hard_state.vote} in term "
                      f"{hard_state.term}")  # fmt: skip

    def on_apply(self, node: str, core: RaftCore | None, index: int, command: bytes) -> None:
        if core is not None and index > core.log.committed:
            self.note(f"{node} applies entry {index}, past its commit index {core.log.committed}")
        known = self.applied.setdefault(index, command)
        if known != command:
            self.note(f"state machine safety: {node} applied {command!r} at {index}, another "
                      f"node applied {known!r}")  # fmt: skip
        committed = self.committed.get(index)
        if committed is not None and not committed.data.endswith(command):
            self.note(f"{node} applied {command!r} at {index}, but {committed} was committed")

    def sent(self, message: Message) -> None:
        """A message left a node: note what its acknowledgements and votes promise."""
        if isinstance(message, RequestVoteResponse) and message.granted and not message.prevote:
            self.grants[(message.src, message.term)] = message.dst
        if isinstance(message, AppendEntriesResponse) and message.success:
            term, index = self.acked.get(message.src, (0, 0))
            if message.term > term or (message.term == term and message.index > index):
                self.acked[message.src] = (message.term, message.index)

    def crashed(self, host: Host) -> None:
        pass

    def lost_data(self, host: Host) -> None:
        """``host``'s disk lost what it had acknowledged (a fault beyond the
        crash model): its promises are void until it recovers."""
        self.acked.pop(host.id, None)

    def wiped(self, host: Host) -> None:
        """``host`` starts again with an empty data dir: a new server under
        an old name, bound by none of the old one's votes."""
        self.lost_data(host)
        self.votes.pop(host.id, None)
        self.durable_terms.pop(host.id, None)

    # --- after every event ------------------------------------------------------

    def check(self) -> None:
        if self.noted is not None:
            self.fail(self.noted)
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
                    self.committed_in.setdefault(index, core.term)
                    if known != entry:
                        self.fail(f"committed entries differ at {index}: {host.id} has "
                                  f"{entry}, earlier {known}")  # fmt: skip
                self.seen_commit[key] = log.committed
            if core.role is Role.LEADER:
                self._check_leader(host.id, core)
            elif core.leader not in (None, self.leaders.get(core.term, core.leader)):
                self.fail(f"{host.id} follows {core.leader} in term {core.term}, whose leader "
                          f"is {self.leaders[core.term]}")  # fmt: skip
            self._check_promises(host)

    def _check_promises(self, host: Host) -> None:
        """What a node acknowledged in its term it still holds; its disk
        holds what its core believes stable; replicas that applied the same
        prefix of the log hold the same state."""
        node = host.handler
        core = node.core
        term, index = self.acked.get(host.id, (0, 0))
        if term == core.term and core.log.last_index() < index and not node.condition.recovering:
            self.fail(f"{host.id} acknowledged entries up to {index} in term {term} and now "
                      f"holds up to {core.log.last_index()}")  # fmt: skip
        if not node.gate.saving:
            durable = node.storage.storage._state  # type: ignore[attr-defined]
            stable = core.log.unstable - 1
            # (The disk may hold more: a conflict truncated the core's log,
            # and the next save truncates the disk's.)
            if durable is not None and stable > max(core.log.snapshot.index, durable.base_index) \
                    and durable.term_at(stable) != core.log.term(stable):
                self.fail(f"{host.id}'s core holds entry {stable} of term "
                          f"{core.log.term(stable)} as durable, its disk "
                          f"{durable.term_at(stable)}")  # fmt: skip
        machine = host.machine
        if machine is not None and self.last_state.get(host.id) != (host.incarnation,
                                                                     node.applied_index):
            self.last_state[host.id] = (host.incarnation, node.applied_index)
            sessions = node.applier.sessions.snapshot()
            state = (tuple(sorted(machine.data.items())), tuple(sorted(sessions.items())))
            known = self.states.setdefault(node.applied_index, state)
            if known != state:
                self.fail(f"{host.id} holds {state} after applying up to "
                          f"{node.applied_index}, another replica held {known}")  # fmt: skip


    def _check_leader(self, node: str, core: RaftCore) -> None:
        term = core.term
        other = self.leaders.setdefault(term, node)
        if other != node:
            self.fail(f"election safety: {other} and {node} both lead term {term}")
        key = (node, term)
        voted = self.votes.get(node, {}).get(term) == node
        if not voted and key not in self.elections and core.log.term(core.log.applied) == term:
            self.fail(f"{node} leads term {term} and applies its entries, without a durable vote "
                      "for itself")  # fmt: skip
        if key not in self.elections and voted:
            # Its own vote is durable, so the grants it counted were too.
            self.elections.add(key)
            voters = sorted(core.config.voters)
            # A vote is kept by its durable record, or by a durable later
            # term (a voter never votes again in an earlier one).
            granted = [
                v for v in voters
                if self.votes.get(v, {}).get(term) == node
                or (self.grants.get((v, term)) == node and self.durable_terms.get(v, 0) > term)
            ]
            if len(granted) < len(voters) // 2 + 1:
                self.fail(f"{node} leads term {term} with the durable votes of {granted} "
                          f"only, of {voters}")  # fmt: skip
        if key not in self.checked_leaders:
            # Leader completeness: everything committed so far is in its log.
            self.checked_leaders.add(key)
            for index, entry in self.committed.items():
                if self.committed_in[index] >= term:
                    continue  # committed in this term or a later one, maybe not by it
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
