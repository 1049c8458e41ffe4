"""Live membership changes in a Raft node (Raft thesis ch. 4).

The core changes the configuration one server at a time through CONFIG
entries, in force as soon as they are appended (thesis §4.1).  This is the
node's side of it:

- a CONFIG entry's data is the configuration plus every member's Raft
  address (``{"voters", "learners", "addresses"}``), so each node learns how
  to reach a member from the log (or from a snapshot, which stores the
  addresses at its index).  The addresses written into a new entry are
  those of the configuration in force in the core at that moment, never a
  copy that may lag behind it (two joins taken in one turn once lost the
  first one's address this way);
- ``add(id, address)`` adds a *learner*; the leader promotes it to voter on
  its own once it has every entry that was committed a tick earlier;
- ``replica(id, address)`` adds a learner that stays one: a read replica
  (``--non-voter``), listed under ``"replicas"`` in the entry's data (and a
  snapshot's header), so that every later leader leaves it as it is;
- ``remove(id)`` removes a voter or learner, the leader included;
- on a follower both are forwarded to the leader (AMP ``ChangeMember``);
  they are answered once *their own* entry is committed and applied on the
  node that answers (a change lost with a leader change is an error, which
  the asker retries);
- a node finds out that it was removed when a committed configuration that
  excludes it reaches its log, or when a member answers its messages with a
  "removed" notice (`removed_at`).
"""

from __future__ import annotations

import json
from typing import Any, Callable

from attrs import define
from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger

from skydns import config as options
from skydns.raft.core.messages import Configuration, EntryKind, decode_config
from skydns.raft.core.progress import ProgressState
from skydns.raft.core.raft import RaftCore
from skydns.raft.core.ready import ConfigChangeRefused, NotLeader, ProposalDropped, Role
from skydns.raft.net.interface import IRaftTransport, MemberChangeError, NotLeaderHere
from skydns.raft.node.condition import Condition
from skydns.raft.node.configdata import (
    Addresses,
    config_data,
    replicas_at,
    replicas_in_force,
)
from skydns.raft.node.gate import CoreGate

log = Logger()

#: A learner is promoted once it is at most this many entries behind the
#: leader, or holds every entry committed a tick earlier (under load the
#: first can stay out of reach for ever).
PROMOTE_LAG = 100

@define
class _Change:
    index: int
    term: int
    op: str
    member: str
    deferred: Deferred[Addresses]


class Members:
    """The members of one node's cluster and the changes it is waiting for."""

    def __init__(
        self,
        gate: CoreGate,
        transport: IRaftTransport,
        addresses: Addresses,
        condition: Condition,
        on_removed: Callable[[int], None],
        joining: bool = False,
        promote_lag: int = PROMOTE_LAG,
        leader_commit: Callable[[], int] = lambda: 0,
    ) -> None:
        """``leader_commit`` is the leader's commit index as last heard."""
        self.gate = gate
        self.leader_commit = leader_commit
        self.transport = transport
        #: Every member's Raft address (the node's own included), kept
        #: current with the configuration in force.
        self.addresses = addresses
        self.condition = condition
        self.on_removed = on_removed
        self.promote_lag = promote_lag
        self._seen: tuple[int, Configuration] | None = None
        self._waiting: list[_Change] = []
        #: Addresses (and read replicas) from the last snapshot loaded or installed.
        self.snapshot_addresses: Addresses = {}
        self.snapshot_replicas: frozenset[str] = frozenset()
        self._replicas: tuple[Any, frozenset[str]] = (None, frozenset())
        #: Former members: id -> index of the configuration that dropped them.
        self.removed: dict[str, int] = {}
        #: The last address known of every member this node heard of, former
        #: ones included (a leader may be missing from a stale configuration
        #: this node holds: it must still be answered).
        self.known: dict[str, str] = {m: a for m, a in addresses.items() if a}

        #: Whether this node was in a configuration it held (a joining node
        #: is not until the entry that adds it arrives).
        self.was_member = not joining
        #: The commit index at the previous tick (for promotions).
        self._commit_mark = 0

    @property
    def id(self) -> str:
        return self.gate.core.id

    def is_member(self) -> bool:
        config = self.gate.core.config
        return self.id in config.voters or self.id in config.learners

    # --- following the configuration -----------------------------------------

    def in_force(self, core: RaftCore) -> Addresses:
        """The address of each member of the configuration in force in ``core``."""
        found: dict[str, Any] = {}
        if core.config_index > core.log.snapshot.index:
            try:
                found = json.loads(core.log.entry(core.config_index).data).get("addresses", {})
            except (ValueError, AttributeError):
                found = {}
        elif core.config_index > 0:
            found = self.snapshot_addresses
        members = core.config.voters | core.config.learners
        return {m: found.get(m) or self.addresses.get(m) for m in sorted(members)}

    def replicas(self) -> frozenset[str]:
        """The members that are read replicas in the configuration in force
        (read again only when that configuration changes)."""
        core = self.gate.core
        key = (core.config_index, core.log.snapshot.index, core.config, self.snapshot_replicas)
        if self._replicas[0] != key:
            self._replicas = (key, self.replicas_in_force(core))
        return self._replicas[1]

    def replicas_in_force(self, core: RaftCore) -> frozenset[str]:
        return replicas_in_force(core, self.snapshot_replicas)

    def replicas_at(self, core: RaftCore, index: int) -> frozenset[str]:
        """The read replicas at ``index`` (a snapshot's)."""
        return replicas_at(core, index, self.snapshot_replicas)

    def refresh(self) -> None:
        """Bring the addresses and the transport's peers up to the core's
        configuration (called after every Ready)."""
        core = self.gate.core
        self.check_self()
        seen = (core.config_index, core.config)
        if seen == self._seen:
            return
        if self._seen is None:
            self._seed_removed()
        self._seen = seen
        book = self.in_force(core)
        if not book:
            return  # a fresh node that has not joined yet
        for member, address in book.items():
            self.removed.pop(member, None)  # back (a removal undone, or re-added)
            if address:
                self.known[member] = address
            if member != self.id and (member not in self.addresses or
                                      (address and self.addresses[member] != address)):
                self._connect(member, address)
            self.addresses[member] = address
        for member in list(self.addresses):
            if member not in book and member != self.id:
                del self.addresses[member]
                self.removed[member] = core.config_index
                self.transport.remove_peer(member)
                log.info("raft member {member} removed", member=member)

    def _seed_removed(self) -> None:
        """At start-up: the members of earlier configurations still in the log
        that the latest one dropped are former members."""
        core = self.gate.core
        members = core.config.voters | core.config.learners
        for index in range(core.log.snapshot.index + 1, core.config_index):
            entry = core.log.entry(index)
            if entry.kind is not EntryKind.CONFIG:
                continue
            try:
                old = decode_config(entry.data)
            except ValueError:
                continue
            for member in (old.voters | old.learners) - members:
                if member != self.id:
                    self.removed[member] = core.config_index

    def check_self(self) -> None:
        """Tell the node if a committed configuration no longer has it."""
        core = self.gate.core
        members = core.config.voters | core.config.learners
        if self.id in members:
            self.was_member = True
        elif (
            self.was_member and members and core.config_index <= core.log.committed
            and self.caught_up()
        ):
            self.on_removed(core.config_index)

    def caught_up(self) -> bool:
        """Whether this node's log reaches what the leader had committed when
        last heard: a node catching up replays history, in which a node that
        was removed, emptied and added again under the same id sees its old
        removal before the entry that added it back."""
        return self.gate.core.log.last_index() >= self.leader_commit()

    def removed_at(self, member: str) -> int | None:
        """The index of the committed configuration that removed ``member``
        (None if it was not removed, or its removal may still be undone)."""
        index = self.removed.get(member)
        if index is None or index > self.gate.core.log.committed:
            return None
        return index

    def answer(self, member: str) -> None:
        """Keep a way back to ``member``, which this node follows though it is
        not in the configuration it holds (the leader of a newer one)."""
        if member not in self.addresses and member in self.known:
            try:
                self.transport.add_peer(member, self.known[member])
            except ValueError:
                pass

    def _connect(self, member: str, address: str | None) -> None:
        if not address:
            log.warn("raft member {member} has no known address", member=member)
            return
        try:
            self.transport.remove_peer(member)
            self.transport.add_peer(member, address)
        except ValueError as e:
            log.error("cannot connect to member {member} at {address}: {error}",
                      member=member, address=address, error=str(e))  # fmt: skip
            return
        log.info("raft member {member} added at {address}", member=member, address=address)

    def applied(self, index: int) -> None:
        """Answer the changes whose entries are applied up to ``index``."""
        if not self._waiting:
            return
        core = self.gate.core
        still = []
        for change in self._waiting:
            if change.index > index:
                still.append(change)
            elif self._took_effect(core, change):
                change.deferred.callback(dict(self.addresses))
            else:
                change.deferred.errback(
                    MemberChangeError("refused", "the change was lost with a leader change")
                )
        self._waiting = still

    @staticmethod
    def _took_effect(core: RaftCore, change: _Change) -> bool:
        """Whether the entry at the change's index is the one it proposed."""
        term = core.log.term(change.index)
        if term is None:  # compacted: judge by the configuration now
            config = core.config
        elif term != change.term or core.log.entry(change.index).kind is not EntryKind.CONFIG:
            return False
        else:
            config = decode_config(core.log.entry(change.index).data)
        present = change.member in config.voters | config.learners
        return not present if change.op == "remove" else present

    def fail_all(self, reason: str) -> None:
        waiting, self._waiting = self._waiting, []
        for change in waiting:
            change.deferred.errback(NotLeaderHere(None))

    # --- the leader promotes caught-up learners (not read replicas) ----------------

    def tick(self, core: RaftCore) -> None:
        """Promote a caught-up learner (called through the gate every tick)."""
        mark, self._commit_mark = self._commit_mark, core.log.committed
        if core.role is not Role.LEADER or not core.config.learners:
            return
        replicas = self.replicas_in_force(core)
        if core.config_pending() or core.log.term(core.log.committed) != core.term:
            return
        needed = max(1, min(mark, core.log.last_index() - self.promote_lag))
        for learner in sorted(core.config.learners - replicas):
            pr = core.progress.get(learner)
            if pr is None or pr.state is not ProgressState.REPLICATE or pr.match < needed:
                continue
            new = Configuration(core.config.voters | {learner}, core.config.learners - {learner})
            try:
                core.change_config(new, config_data(new, self.in_force(core), replicas))
            except (ConfigChangeRefused, NotLeader, ProposalDropped):
                return
            log.info("raft learner {member} caught up: promoted to voter", member=learner)
            return

    # --- requests -----------------------------------------------------------

    def learn(self, addresses: Addresses) -> None:
        """A joining node learns where the members are (from the answer to its
        join request), so that it can answer the leader before its log says."""
        for member, address in sorted(addresses.items()):
            if address:
                self.known[member] = address
            if member != self.id and member not in self.addresses:
                self._connect(member, address)
                self.addresses[member] = address

    def change(self, op: str, member_id: str, address: str | None) -> Deferred[Addresses]:
        """Add (op ``add``), add as a read replica (``replica``) or remove
        (``remove``) a member here if leader, else through the leader."""
        if self.condition.refusal() is not None:
            return fail(NotLeaderHere(None))
        try:
            member_id = options.check_node_id(member_id)
            if op in ("add", "replica"):
                if not address:
                    raise ValueError("an address HOST:PORT is needed")
                options.parse_hostport(address)
            elif op != "remove":
                raise ValueError(f"unknown operation {op!r}")
        except ValueError as e:
            return fail(MemberChangeError("invalid", str(e)))
        core = self.gate.core
        if core.role is not Role.LEADER:
            leader = core.leader
            if leader is None or leader == self.id:
                return fail(NotLeaderHere(None))
            return self.transport.change_member(leader, op, member_id, address)
        done: Deferred[Addresses] = Deferred()

        def propose(core: RaftCore) -> None:
            try:
                index = self._propose(core, op, member_id, address)
            except (MemberChangeError, NotLeaderHere) as e:
                done.errback(e)
                return
            if index is None:  # already done
                done.callback(dict(self.addresses))
                return
            self._waiting.append(_Change(index, core.term, op, member_id, done))

        self.gate.run(propose)
        return done

    def _propose(self, core: RaftCore, op: str, member_id: str, address: str | None) -> int | None:
        if core.role is not Role.LEADER:
            raise NotLeaderHere(core.leader)
        config = core.config
        members = config.voters | config.learners
        book = self.in_force(core)
        replicas = self.replicas_in_force(core)
        if op in ("add", "replica"):
            if member_id in members:
                if book.get(member_id) == address and (op == "add" or member_id in replicas):
                    return None  # a retried join whose answer was lost (or a node
                    # added as a replica first, then started with --join)
                raise MemberChangeError(
                    "exists", f"{member_id} is already a member, at {book.get(member_id)}"
                )
            taken = [m for m, a in book.items() if a == address]
            if taken:
                raise MemberChangeError("exists", f"{address} is the address of {taken[0]}")
            new = Configuration(config.voters, config.learners | {member_id})
            book[member_id] = address
            if op == "replica":
                replicas |= {member_id}
        else:
            if member_id not in members:
                raise MemberChangeError("not_found", f"{member_id} is not a member")
            new = Configuration(config.voters - {member_id}, config.learners - {member_id})
            replicas -= {member_id}
        try:
            return core.change_config(new, config_data(new, book, replicas))
        except ConfigChangeRefused as e:
            raise MemberChangeError("refused", str(e)) from e
        except (NotLeader, ProposalDropped) as e:
            raise NotLeaderHere(None) from e
