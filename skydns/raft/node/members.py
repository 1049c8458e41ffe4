"""Live membership changes in a Raft node (Raft thesis ch. 4).

The core changes the configuration one server at a time through CONFIG
entries, in force as soon as they are appended (thesis §4.1; see
``RaftCore.change_config``).  This module is the node's side:

- a CONFIG entry's data is the configuration plus every member's Raft
  address (``{"voters", "learners", "addresses"}``), so each node learns how
  to reach a new member from the log (or from a snapshot, which stores the
  addresses at its index); the transport connects to added members and
  drops removed ones;
- ``add(id, address)`` adds a *learner* (it receives the log or a snapshot
  but does not vote); the leader promotes it to voter on its own once its
  log is within ``promote_lag`` entries of the leader's;
- ``remove(id)`` removes a voter or learner, the leader included: the
  leader then steps down once the removal commits and hands leadership to a
  caught-up voter (TimeoutNow);
- on a follower both are forwarded to the leader (AMP ``ChangeMember``);
  they fire once the change is applied on the node that answers;
- a node finds out that it was removed (`check_self`): when a committed
  configuration that excludes it reaches its log, or when a member it still
  writes to answers with a "removed" notice (``RaftNode.receive`` gives the
  transport `removed_at` for a sender this member saw removed; the leader
  stops replicating to a member as soon as it appends its removal, so the
  removed node often never sees that entry itself).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger

from skydns import config as options
from skydns.raft.core import raft
from skydns.raft.core.messages import Configuration, EntryKind, decode_config, encode_config
from skydns.raft.core.progress import ProgressState
from skydns.raft.net.interface import MemberChangeError, NotLeaderHere

if TYPE_CHECKING:
    from skydns.raft.node.driver import RaftNode

log = Logger()

#: A learner is promoted once its log is within this many entries of the leader's.
PROMOTE_LAG = 100

Connect = Callable[[str], IStreamClientEndpoint]
Addresses = dict[str, str | None]


def config_data(config: Configuration, addresses: dict[str, str | None]) -> bytes:
    body = json.loads(encode_config(config))
    body["addresses"] = {m: addresses.get(m) for m in sorted(config.voters | config.learners)}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class Members:
    def __init__(
        self,
        node: RaftNode,
        connect: Connect | None = None,
        promote_lag: int = PROMOTE_LAG,
        joining: bool = False,
    ) -> None:
        self.node = node
        self.connect = connect
        self.promote_lag = promote_lag
        self._seen: tuple[int, Configuration] | None = None
        #: Waiting changes: (entry index, entry term, Deferred).
        self._waiting: list[tuple[int, int, Deferred[Addresses]]] = []
        #: Addresses from the last snapshot loaded or installed.
        self.snapshot_addresses: dict[str, str | None] = {}
        #: Former members: id -> index of the configuration that dropped them.
        self.removed: dict[str, int] = {}
        #: Whether this node was in a configuration it held (a joining node
        #: is not until the entry that adds it arrives).
        self.was_member = not joining

    # --- following the configuration -----------------------------------------

    def refresh(self) -> None:
        """Bring the addresses and the transport's peers up to the core's
        configuration (called after every Ready)."""
        core = self.node.core
        self.check_self()
        seen = (core.config_index, core.config)
        if seen == self._seen:
            return
        if self._seen is None:
            self._seed_removed()
        self._seen = seen
        found: dict[str, Any] = {}
        if core.config_index > core.log.snapshot.index:
            try:
                found = json.loads(core.log.entry(core.config_index).data).get("addresses", {})
            except (ValueError, AttributeError):
                found = {}
        elif core.config_index > 0:
            found = self.snapshot_addresses
        members = core.config.voters | core.config.learners
        addresses = self.node.addresses
        if not members:
            return  # a fresh node that has not joined yet
        for member in sorted(members):
            self.removed.pop(member, None)  # back (a removal undone, or re-added)
            address = found.get(member) or addresses.get(member)
            if member not in addresses and member != self.node.id:
                self._connect(member, address)
            addresses[member] = address
        for member in list(addresses):
            if member not in members and member != self.node.id:
                del addresses[member]
                self.removed[member] = core.config_index
                remove = getattr(self.node.transport, "remove_peer", None)
                if remove is not None:
                    remove(member)
                log.info("raft member {member} removed", member=member)

    def _seed_removed(self) -> None:
        """At start-up: the members of earlier configurations still in the log
        that the latest one dropped are former members."""
        core = self.node.core
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
                if member != self.node.id:
                    self.removed[member] = core.config_index

    def check_self(self) -> None:
        """Tell the node if a committed configuration no longer has it."""
        core = self.node.core
        members = core.config.voters | core.config.learners
        if self.node.id in members:
            self.was_member = True
        elif self.was_member and members and core.config_index <= core.log.committed:
            self.node.mark_removed(core.config_index)

    def removed_at(self, member: str) -> int | None:
        """The index of the committed configuration that removed ``member``
        (None if it was not removed, or its removal may still be undone)."""
        index = self.removed.get(member)
        if index is None or index > self.node.core.log.committed:
            return None
        return index

    def _connect(self, member: str, address: str | None) -> None:
        add = getattr(self.node.transport, "add_peer", None)
        if add is None or self.connect is None or not address:
            return
        try:
            add(member, self.connect(address))
        except ValueError as e:
            log.error("cannot connect to new member {member} at {address}: {error}",
                      member=member, address=address, error=str(e))  # fmt: skip
            return
        log.info("raft member {member} added at {address}", member=member, address=address)

    def applied(self, index: int) -> None:
        """Fire the changes applied up to ``index``."""
        if not self._waiting:
            return
        core = self.node.core
        still = []
        for at, term, d in self._waiting:
            if at > index:
                still.append((at, term, d))
                continue
            if core.log.term(at) not in (term, None):
                d.errback(MemberChangeError("refused", "the change was lost with a leader change"))
            else:
                d.callback(dict(self.node.addresses))
        self._waiting = still

    def fail_all(self, reason: str) -> None:
        waiting, self._waiting = self._waiting, []
        for _, _, d in waiting:
            d.errback(NotLeaderHere(None))

    # --- the leader promotes caught-up learners -----------------------------------

    def tick(self) -> None:
        core = self.node.core
        if core.role is not raft.Role.LEADER or not core.config.learners:
            return
        if core.config_pending() or core.log.term(core.log.committed) != core.term:
            return
        for learner in sorted(core.config.learners):
            pr = core.progress.get(learner)
            if pr is None or pr.match < max(1, core.log.last_index() - self.promote_lag):
                continue
            if pr.state is not ProgressState.REPLICATE:
                continue
            new = Configuration(core.config.voters | {learner}, core.config.learners - {learner})
            try:
                core.change_config(new, config_data(new, self.node.addresses))
            except (raft.ConfigChangeRefused, raft.NotLeader, raft.ProposalDropped):
                return
            log.info("raft learner {member} caught up: promoted to voter", member=learner)
            self.node.schedule()
            return

    # --- requests -----------------------------------------------------------

    def learn(self, addresses: Addresses) -> None:
        """A joining node learns where the members are (from the answer to its
        join request), so that it can answer the leader before its log says."""
        for member, address in sorted(addresses.items()):
            if member != self.node.id and member not in self.node.addresses:
                self._connect(member, address)
                self.node.addresses[member] = address

    def change(self, op: str, member_id: str, address: str | None) -> Deferred[Addresses]:
        """Add or remove a member here if leader, else through the leader."""
        node = self.node
        if node.failed or not node.running:
            return fail(NotLeaderHere(None))
        try:
            member_id = options.check_node_id(member_id)
            if op == "add":
                if not address:
                    raise ValueError("an address HOST:PORT is needed")
                options.parse_hostport(address)
            elif op != "remove":
                raise ValueError(f"unknown operation {op!r}")
        except ValueError as e:
            return fail(MemberChangeError("invalid", str(e)))
        core = node.core
        if core.role is not raft.Role.LEADER:
            leader = core.leader
            change = getattr(node.transport, "change_member", None)
            if leader is None or leader == node.id or change is None:
                return fail(NotLeaderHere(None))
            d: Deferred[Addresses] = change(leader, op, member_id, address)
            return d
        try:
            index = self._propose(op, member_id, address)
        except (MemberChangeError, NotLeaderHere) as e:
            return fail(e)
        done: Deferred[Addresses] = Deferred()
        self._waiting.append((index, core.term, done))
        node.schedule()
        return done

    def _propose(self, op: str, member_id: str, address: str | None) -> int:
        core = self.node.core
        config = core.config
        members = config.voters | config.learners
        if op == "add":
            if member_id in members:
                raise MemberChangeError("exists", f"{member_id} is already a member")
            new = Configuration(config.voters, config.learners | {member_id})
            addresses = dict(self.node.addresses)
            addresses[member_id] = address
        else:
            if member_id not in members:
                raise MemberChangeError("not_found", f"{member_id} is not a member")
            new = Configuration(config.voters - {member_id}, config.learners - {member_id})
            addresses = dict(self.node.addresses)
        try:
            return core.change_config(new, config_data(new, addresses))
        except raft.ConfigChangeRefused as e:
            raise MemberChangeError("refused", str(e)) from e
        except (raft.NotLeader, raft.ProposalDropped) as e:
            raise NotLeaderHere(None) from e
