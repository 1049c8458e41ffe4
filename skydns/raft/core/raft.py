"""The Raft consensus algorithm as a pure state machine (no I/O at all).

Modelled on etcd's raft library.  The driver (``skydns.raft.node.driver``)
gives a `RaftCore` its inputs:

- ``tick()``: one unit of logical time (elections and heartbeats count ticks);
- ``step(message)``: a message from another node;
- ``propose_many(data)``, ``read_index(context)``, ``transfer_leadership(to)``,
  ``change_config(new)``: requests from this node's clients;
- ``peer_unreachable(peer)``: the connection to a peer broke (a hint: the
  leader's process may be gone, so its lease need not be waited out);

and drains its output with ``ready()`` / ``advance(ready)``.  The Ready
contract (docs/raft.md), which is what makes the algorithm safe across
crashes: persist the Ready's hard state and entries and sync them; only
then send its messages; apply its committed entries; ``advance``.

``peers`` lists every voter, this node included (a snapshot's configuration,
when present, wins).  ``status()`` describes the node for operators.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from skydns.raft.core import election, membership, output, reads, replication
from skydns.raft.core.log import RaftLog
from skydns.raft.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Configuration,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    SnapshotMeta,
    TimeoutNow,
)
from skydns.raft.core.progress import Inflights, Progress, ReadOnly
from skydns.raft.core.ready import (
    ConfigChangeRefused,
    NotLeader,
    ProposalDropped,
    ReadState,
    Ready,
    RestoredState,
    Role,
    SoftState,
)


class RaftCore:
    def __init__(
        self,
        node_id: str,
        peers: list[str],
        storage: RestoredState,
        rng: random.Random,
        election_tick: int = 10,
        heartbeat_tick: int = 1,
        max_size_per_msg: int = 64 * 1024,
        max_inflight: int = 64,
        pre_vote: bool = True,
        check_quorum: bool = True,
        snapshot_timeout_tick: int | None = None,
    ) -> None:
        if heartbeat_tick >= election_tick:
            raise ValueError("heartbeat_tick must be below election_tick")
        self.id = node_id
        self.rng = rng
        self.election_tick = election_tick
        self.heartbeat_tick = heartbeat_tick
        self.max_size_per_msg = max_size_per_msg
        self.max_inflight = max_inflight
        self.pre_vote = pre_vote
        self.check_quorum = check_quorum
        #: A follower that has not acknowledged a snapshot this many ticks
        #: after it was sent is sent it again.
        self.snapshot_timeout_tick = snapshot_timeout_tick or 20 * election_tick
        self.initial_config = Configuration(frozenset(peers))
        config = storage.snapshot.config
        self.config = config if config is not None else self.initial_config
        #: The index of the CONFIG entry in force (membership takes effect
        #: when its entry is appended, thesis §4.1); the snapshot's otherwise.
        self.config_index = storage.snapshot.index
        hs = storage.hard_state
        self.term = hs.term
        self.vote = hs.vote
        self.log = RaftLog.restore(storage.snapshot, list(storage.entries), hs.commit)
        self.log.applied = min(max(storage.applied, storage.snapshot.index), self.log.committed)
        self.recovering = storage.recovering
        self.recovered = False
        self.lost: str | None = None
        self.role = Role.FOLLOWER
        self.leader: str | None = None
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = election_tick
        self.ticks = 0
        self.votes: dict[str, bool] = {}
        self.progress: dict[str, Progress] = {}
        self.lead_transferee: str | None = None
        self.read_only = ReadOnly()
        self.pending_reads: list[tuple[bytes, str | None]] = []
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        #: A leader's snapshot accepted by this follower, until a Ready hands it out.
        self.pending_snapshot: InstallSnapshot | None = None
        self.prev_hard_state = hs
        self.prev_soft_state = SoftState(None, Role.FOLLOWER)
        self.reset(self.term)
        self.track_config(self.log.entries)

    # --- helpers ------------------------------------------------------------

    def quorum(self) -> int:
        return len(self.config.voters) // 2 + 1

    def promotable(self) -> bool:
        """Whether this server may campaign: a voter whose log is whole."""
        return self.id in self.config.voters and not self.recovering

    def send(self, message: Message) -> None:
        self.msgs.append(message)

    def peers(self) -> list[str]:
        everyone = self.config.voters | self.config.learners
        return sorted(p for p in everyone if p != self.id)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = None
        self.leader = None
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_tick + self.rng.randrange(
            self.election_tick
        )
        self.lead_transferee = None
        self.votes = {}
        self.progress = {}
        self.read_only.clear()
        self.pending_reads = []

    # --- role changes -------------------------------------------------------

    def become_follower(self, term: int, leader: str | None) -> None:
        self.reset(term)
        self.leader = leader
        self.role = Role.FOLLOWER

    def become_leader(self) -> None:
        assert self.role is Role.CANDIDATE, "only a candidate can become leader"
        self.reset(self.term)
        self.role = Role.LEADER
        self.leader = self.id
        last = self.log.last_index()
        for peer in [self.id, *self.peers()]:
            self.progress[peer] = Progress(
                match=0,
                next=last + 1,
                inflights=Inflights(self.max_inflight),
                last_active_tick=self.ticks,
            )
        # A no-op of the new term lets the leader commit (and learn the
        # commit index) without waiting for a client (Raft §5.4.2, §8).
        self.append([Entry(self.term, last + 1, EntryKind.NOOP)])
        self.broadcast_append()

    def campaign(self, prevote: bool, transfer: bool = False) -> None:
        election.campaign(self, prevote, transfer)

    # --- inputs -------------------------------------------------------------

    def tick(self) -> None:
        election.tick(self)

    def step(self, m: Message) -> None:
        if m.term > self.term:
            if isinstance(m, RequestVote):
                in_lease = (
                    self.check_quorum
                    and self.leader is not None
                    and self.election_elapsed < self.election_tick
                )
                if in_lease and not m.transfer:
                    # We heard from a leader within the election timeout: a
                    # node cut off from it must not depose it (thesis §4.2.3).
                    return
            if isinstance(m, RequestVote) and m.prevote:
                pass  # a PreVote changes no term
            elif isinstance(m, RequestVoteResponse) and m.prevote and m.granted:
                pass  # granted PreVotes carry the term we would campaign at
            else:
                from_leader = isinstance(m, (AppendEntries, Heartbeat, InstallSnapshot))
                self.become_follower(m.term, m.src if from_leader else None)
        elif m.term < self.term:
            stale_leader = isinstance(m, (AppendEntries, Heartbeat, InstallSnapshot))
            if (self.check_quorum or self.pre_vote) and stale_leader:
                # Tell a stale leader about the newer term so it steps down.
                self.send(AppendEntriesResponse(self.id, m.src, self.term, False, 0))
            elif isinstance(m, RequestVote) and m.prevote:
                self.send(RequestVoteResponse(self.id, m.src, self.term, False, prevote=True))
            return
        if isinstance(m, RequestVote):
            election.handle_vote_request(self, m)
        elif self.role is Role.LEADER:
            self._step_leader(m)
        elif self.role is Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _step_leader(self, m: Message) -> None:
        if isinstance(m, AppendEntriesResponse):
            replication.handle_append_response(self, m)
        elif isinstance(m, HeartbeatResponse):
            replication.handle_heartbeat_response(self, m)
        elif isinstance(m, ReadIndexRequest):
            reads.leader_read(self, m.context, m.src)

    def _step_candidate(self, m: Message) -> None:
        if isinstance(m, (AppendEntries, Heartbeat, InstallSnapshot)):
            self.become_follower(self.term, m.src)
            self._step_follower(m)
        elif isinstance(m, RequestVoteResponse):
            election.handle_vote_response(self, m)

    def _step_follower(self, m: Message) -> None:
        if isinstance(m, (AppendEntries, Heartbeat, InstallSnapshot)):
            self.election_elapsed = 0
            self.leader = m.src
        if isinstance(m, AppendEntries):
            replication.handle_append(self, m)
        elif isinstance(m, Heartbeat):
            if m.commit > self.log.last_index() and not self.recovering:
                replication.lost_entries(self, m)
            self.log.commit_to(min(m.commit, self.log.last_index()))
            self.send(HeartbeatResponse(self.id, m.src, self.term, m.context))
        elif isinstance(m, TimeoutNow):
            if self.promotable():
                self.campaign(prevote=False, transfer=True)
        elif isinstance(m, ReadIndexResponse):
            self.read_states.append(ReadState(m.index, m.context))
        elif isinstance(m, InstallSnapshot):
            replication.handle_snapshot(self, m)

    def propose(self, data: bytes, kind: EntryKind = EntryKind.NORMAL) -> int:
        """Append a command to the leader's log; return its index.

        The index is no promise: the entry may still be lost if leadership
        changes before it commits.  Clients use request ids and retry.
        """
        return self.propose_many((data,), kind)

    def propose_many(self, data: Sequence[bytes], kind: EntryKind = EntryKind.NORMAL) -> int:
        """Append several commands, in order, to the leader's log; return
        the index of the first (the others follow it).

        One call costs one commit check and one AppendEntries per follower
        however many commands it carries, where `propose` per command would
        build and then merge one message per command and follower.
        """
        if not data:
            raise ValueError("nothing to propose")
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader)
        if self.lead_transferee is not None:
            raise ProposalDropped(f"transferring leadership to {self.lead_transferee}")
        first = self.log.last_index() + 1
        self.append([Entry(self.term, first + i, kind, d) for i, d in enumerate(data)])
        for peer in self.peers():
            self.send_append(peer, send_if_empty=False)
        return first

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read; a `ReadState` with ``context`` comes
        out of a later Ready (or never, if leadership is lost meanwhile)."""
        if self.role is Role.LEADER:
            reads.leader_read(self, context, None)
        elif self.leader is not None:
            self.send(ReadIndexRequest(self.id, self.leader, self.term, context))
        else:
            raise NotLeader(None)

    def peer_unreachable(self, peer: str) -> None:
        """The connection to ``peer`` broke (see `election.peer_unreachable`)."""
        election.peer_unreachable(self, peer)

    def transfer_leadership(self, to: str) -> None:
        """Hand leadership to ``to`` once its log is caught up (thesis §3.10)."""
        election.transfer_leadership(self, to)

    # --- replication (Raft §5.3; see skydns.raft.core.replication) -------------

    def append(self, entries: list[Entry]) -> None:
        replication.append_all(self, entries)

    def send_append(self, to: str, send_if_empty: bool = True) -> bool:
        return replication.send_append(self, to, send_if_empty)

    def broadcast_append(self) -> None:
        replication.broadcast_append(self)

    def broadcast_heartbeat(self, context: bytes | None) -> None:
        replication.broadcast_heartbeat(self, context)

    def maybe_commit(self) -> bool:
        """Advance the commit index to what a quorum holds (Raft §5.3, §5.4.2)."""
        return replication.maybe_commit(self)

    # --- membership (thesis ch. 4; see skydns.raft.core.membership) -------------

    def change_config(self, new: Configuration, data: bytes | None = None) -> int:
        """Append a CONFIG entry that moves the cluster to ``new``; its index
        (`skydns.raft.membership.change_config` says which changes are allowed)."""
        return membership.change_config(self, new, data)

    def config_pending(self) -> bool:
        return self.config_index > self.log.committed

    def track_config(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        membership.track_config(self, entries)

    def set_config(self, config: Configuration) -> None:
        membership.set_config(self, config)

    def step_down_if_removed(self) -> None:
        membership.step_down_if_removed(self)

    # --- snapshots --------------------------------------------------------

    def config_at(self, index: int) -> Configuration:
        """The configuration in force once the log up to ``index`` is applied."""
        return membership.config_at(self, index)

    def config_entry_at(self, index: int) -> int:
        """Where that configuration is: its CONFIG entry's index, or the snapshot's."""
        return membership.config_entry_at(self, index)

    def snapshot_meta(self, index: int) -> SnapshotMeta:
        """What a snapshot of the state machine at applied ``index`` is."""
        term = self.log.term(index)
        if term is None or index > self.log.applied:
            raise ValueError(f"index {index} is not applied or already compacted")
        return SnapshotMeta(index, term, self.config_at(index))

    def compact(self, meta: SnapshotMeta) -> None:
        """The adapter has stored a snapshot at ``meta`` (from `snapshot_meta`):
        forget the entries it covers.  A follower that needs them later is
        sent the snapshot instead."""
        self.log.compact(meta)

    # --- output -------------------------------------------------------------

    def has_ready(self) -> bool:
        return output.has_ready(self)

    def ready(self) -> Ready:
        return output.ready(self)

    def advance(self, rd: Ready) -> None:
        """The adapter has persisted, sent and applied what ``rd`` held."""
        output.advance(self, rd)

    def status(self) -> dict[str, Any]:
        return output.status(self)


__all__ = [
    "ConfigChangeRefused",
    "NotLeader",
    "ProposalDropped",
    "RaftCore",
    "Ready",
    "ReadState",
    "RestoredState",
    "Role",
    "SoftState",
]
