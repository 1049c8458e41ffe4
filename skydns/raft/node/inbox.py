"""What the transport delivers to a Raft node (`IRaftHandler`): messages,
which are checked against the configuration before they step the core,
proposals forwarded by followers, removal notices and lost peers."""

from __future__ import annotations

from typing import Callable

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from zope.interface import implementer

from skydns.raft.core.messages import AppendEntries, Heartbeat, InstallSnapshot, Message
from skydns.raft.core.raft import RaftCore
from skydns.raft.core.ready import NotLeader, ProposalDropped, Role
from skydns.raft.net.interface import (
    BadProposal,
    IRaftHandler,
    NotLeaderHere,
    ProposalTooLarge,
)
from skydns.raft.node.condition import Condition
from skydns.raft.node.envelope import EnvelopeError, unwrap
from skydns.raft.node.gate import CoreGate
from skydns.raft.node.health import Health
from skydns.raft.node.machine import InvalidCommand, IStateMachine
from skydns.raft.node.members import Addresses, Members
from skydns.raft.node.proposals import MAX_COMMAND_BYTES

log = Logger()

#: What only a leader sends.
_LEADERS = (AppendEntries, Heartbeat, InstallSnapshot)


@implementer(IRaftHandler)
class Inbox:
    """The node's side of the transport: each call checks what it can
    without the core, then steps the core through the ``gate``."""

    def __init__(
        self,
        node_id: str,
        gate: CoreGate,
        condition: Condition,
        machine: IStateMachine,
        members: Members,
        health: Health,
        receive_snapshot: Callable[[InstallSnapshot], None],
        mark_removed: Callable[[int], None],
        answer_leader_request: Callable[[bytes], Deferred[bytes]],
    ) -> None:
        self.id = node_id
        self.gate = gate
        self.condition = condition
        self.machine = machine
        self.members = members
        self.health = health
        self.receive_snapshot = receive_snapshot
        self.mark_removed = mark_removed
        #: `IRaftHandler.answer_leader_request` (`LeaderRequests.answer`).
        self.answer_leader_request = answer_leader_request

    def change_member(self, op: str, member_id: str, address: str | None) -> Deferred[Addresses]:
        """A membership change forwarded by another member (`Members.change`)."""
        return self.members.change(op, member_id, address)

    def accept_proposal(self, data: bytes) -> Deferred[tuple[int, int]]:
        accepted: Deferred[tuple[int, int]] = Deferred()

        def append(core: RaftCore) -> None:
            maybeDeferred(self._accept, core, data).chainDeferred(accepted)

        self.gate.run(append)
        return accepted

    def _accept(self, core: RaftCore, data: bytes) -> tuple[int, int]:
        if self.condition.refusal() is not None or core.role is not Role.LEADER:
            leader = core.leader
            raise NotLeaderHere(None if leader == self.id or self.condition.removed else leader)
        try:
            envelope = unwrap(data)
            self.machine.check(envelope.payload)
        except (EnvelopeError, InvalidCommand) as e:
            raise BadProposal(str(e)) from e
        if len(envelope.payload) > MAX_COMMAND_BYTES:
            raise ProposalTooLarge(len(envelope.payload))
        try:
            index = core.propose(data)
        except (NotLeader, ProposalDropped) as e:
            raise NotLeaderHere(None) from e
        return index, core.term

    def receive(self, message: Message) -> int | None:
        """Step ``message``; if its sender was removed from the cluster, the
        index of the configuration that removed it (the transport tells it)."""
        if self.condition.refusal() is not None:
            return None
        config = self.gate.core.config
        member = self.id in config.voters or self.id in config.learners
        if (
            message.dst == self.id and member and message.src not in self.members.addresses
            and not isinstance(message, _LEADERS)
        ):
            # (A leader's message is taken even from a member this node saw
            # removed: it may have been added back in entries not yet here.)
            removed = self.members.removed_at(message.src)
            if removed is not None:
                log.info("{src}, removed at index {index}, sent a {kind}: telling it",
                         src=message.src, index=removed,
                         kind=type(message).__name__)  # fmt: skip
                return removed
        unknown = message.src not in self.members.addresses
        if message.dst != self.id or message.src == self.id or (
            member and unknown and not isinstance(message, _LEADERS)
        ):
            # A sender missing from the configuration this node holds may
            # still be its leader (that configuration can be an entry the
            # leader's log replaces, or lag behind one that added the
            # sender, thesis §4.2.3); anything else from it is dropped.
            log.warn("dropped a {kind} from {src} to {dst}: not for this cluster member",
                     kind=type(message).__name__, src=message.src, dst=message.dst)  # fmt: skip
            return None
        if message.src not in self.members.addresses and isinstance(message, _LEADERS):
            self.members.answer(message.src)
        if isinstance(message, InstallSnapshot):
            self.receive_snapshot(message)  # steps the core once it is whole
            return None
        self.gate.run(lambda core: self._step(core, message))
        return None

    def deliver_snapshot(self, message: InstallSnapshot) -> None:
        """Step a snapshot that arrived whole (`Snapshotter`)."""
        self.gate.run(lambda core: self._step(core, message))

    def _step(self, core: RaftCore, message: Message) -> None:
        try:
            core.step(message)
        except Exception:
            log.failure("the Raft core refused a {kind} from {src}",
                        kind=type(message).__name__, src=message.src)  # fmt: skip
        else:
            self.health.heard(message)

    def removed_notice(self, src: str, dst: str, index: int) -> None:
        """Member ``src`` says this node was removed at ``index``."""
        if dst != self.id or src == self.id or src not in self.members.addresses:
            log.warn("ignored a removal notice from {src} to {dst}", src=src, dst=dst)
            return
        core = self.gate.core
        if (
            not self.members.was_member
            or (self.members.is_member() and index < core.config_index)
            or not self.members.caught_up()
        ):
            # Never a member yet, or added back after that removal, or still
            # catching up: the notice comes from a member that has not seen
            # this node come back.
            log.info("ignored a stale removal notice from {src} (index {index})",
                     src=src, index=index)  # fmt: skip
            return
        if self.condition.removed is None and not self.condition.failed:
            log.info("{src} says this node was removed at index {index}", src=src, index=index)
            self.mark_removed(index)

    def peer_unreachable(self, peer_id: str) -> None:
        if self.condition.refusal() is None:
            self.gate.run(lambda core: core.peer_unreachable(peer_id))
