"""Client proposals a Raft node carries until they are applied.

A proposal is tagged with a session (``client id``, ``seq``; see
`skydns.raft.node.envelope`).  The client id names this node, this run of
it and a *slot*: a slot carries one proposal at a time, so the session
table, which remembers each client's latest request, dedupes retries
exactly (Raft thesis §6.3).  A proposal is submitted to the leader (batched
into the local log, or forwarded) and submitted again when the leader
changes, when a forward fails, when the log moves past the index it was
given without it, or when it has waited `RETRY_INTERVAL`; it is answered
when this node applies it (read-your-writes), or fails at its deadline.
"""

from __future__ import annotations

from typing import Any, Callable

from attrs import define, field
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from skydns.raft.core.ready import NotLeader, ProposalDropped, Role
from skydns.raft.net.interface import (
    MAX_PROPOSAL_BYTES,
    BadProposal,
    NotLeaderHere,
    PeerUnavailable,
    ProposalTooLarge,
)
from skydns.raft.node.condition import Condition
from skydns.raft.node.envelope import OVERHEAD, wrap
from skydns.raft.node.errors import CommitTimeout, Unavailable
from skydns.raft.node.gate import CoreGate
from skydns.raft.node.sessions import Stale

log = Logger()

#: The largest command accepted: an entry's data is the command in an envelope.
MAX_COMMAND_BYTES = MAX_PROPOSAL_BYTES - OVERHEAD - 80  # 80: room for the client id

#: Sends proposal data to the leader: (leader, data) -> (index, term).
Forward = Callable[[str, bytes], "Deferred[tuple[int, int]]"]


@define(eq=False)
class Proposal:
    client_id: str
    seq: int
    slot: int
    data: bytes
    deferred: Deferred[Any] = field(init=False)
    #: When it fails if not applied by then (`Proposals.expire_overdue`).
    deadline: float = 0.0
    retry: IDelayedCall | None = None
    index: int = 0
    submitted_at: float = 0.0


class Proposals:
    """The proposals of one node that await their application."""

    def __init__(
        self,
        client_prefix: str,
        gate: CoreGate,
        forward: Forward,
        clock: IReactorTime,
        applied: Callable[[], int],
        condition: Condition,
        timeout: float,
        retry_interval: float,
        retry_delay: float,
    ) -> None:
        """A proposal fails after ``timeout`` seconds; it is submitted again
        after ``retry_interval`` without an answer, or ``retry_delay`` after
        a failed forward."""
        self.client_prefix = client_prefix
        self.retry_interval = retry_interval
        self.retry_delay = retry_delay
        self.gate = gate
        self.forward = forward
        self.clock = clock
        self.applied = applied
        self.condition = condition
        self.timeout = timeout
        self.pending: dict[tuple[str, int], Proposal] = {}
        self._free_slots: list[int] = []
        #: Submitted on the leader, not yet appended (see `append_batch`).
        self._batch: dict[tuple[str, int], Proposal] = {}
        self._seqs: dict[int, int] = {}

    def propose(self, command: bytes) -> Deferred[Any]:
        if len(command) > MAX_COMMAND_BYTES:
            return fail(ProposalTooLarge(len(command)))
        if self._free_slots:
            slot = self._free_slots.pop()
        else:
            slot = len(self._seqs) + 1
            self._seqs[slot] = 0
        seq = self._seqs[slot] = self._seqs[slot] + 1
        client_id = f"{self.client_prefix}.{slot}"
        proposal = Proposal(client_id, seq, slot, wrap(client_id, seq, command))
        proposal.deferred = Deferred(lambda _: self._forget(proposal))
        proposal.deadline = self.clock.seconds() + self.timeout
        self.pending[(client_id, seq)] = proposal
        self.submit(proposal)
        return proposal.deferred

    def submit(self, proposal: Proposal) -> None:
        if (proposal.client_id, proposal.seq) not in self.pending:
            return
        if self.condition.refusal() is not None:
            return
        if proposal.retry is not None and proposal.retry.active():
            proposal.retry.cancel()
        proposal.retry = None
        proposal.submitted_at = self.clock.seconds()
        proposal.index = 0
        core = self.gate.core
        if core.role is Role.LEADER:
            # Appended with the others submitted meanwhile, by `append_batch`.
            self._batch[(proposal.client_id, proposal.seq)] = proposal
            self.gate.wake()
            return
        leader = core.leader
        if leader is None or leader == core.id:
            return  # submitted again when a leader is known
        d = self.forward(leader, proposal.data)
        d.addCallbacks(self._forwarded, self._forward_failed,
                       callbackArgs=(proposal,), errbackArgs=(proposal,))  # fmt: skip
        d.addErrback(lambda f: log.failure("forwarding a proposal", f))

    def append_batch(self) -> None:
        """Append the proposals submitted on the leader since the last call,
        in the order they came, with one `propose_many` (the node calls
        this when no save is under way): under load, one AppendEntries per
        follower then carries all of them."""
        batch = [p for key, p in self._batch.items() if key in self.pending]
        self._batch.clear()
        if not batch or self.condition.refusal() is not None:
            return
        try:
            first = self.gate.core.propose_many([p.data for p in batch])
        except (NotLeader, ProposalDropped):
            return  # submitted again when a leader is known
        for offset, proposal in enumerate(batch):
            proposal.index = first + offset

    def _forwarded(self, answer: tuple[int, int], proposal: Proposal) -> None:
        if (proposal.client_id, proposal.seq) not in self.pending:
            return
        proposal.index = answer[0]
        if proposal.index <= self.applied():
            self.submit(proposal)  # lost already: see after_advance

    def _forward_failed(self, failure: Failure, proposal: Proposal) -> None:
        failure.trap(NotLeaderHere, PeerUnavailable, BadProposal, ProposalTooLarge)
        if (proposal.client_id, proposal.seq) not in self.pending:
            return
        if failure.check(BadProposal, ProposalTooLarge):
            self.finish(proposal, failure)
            return
        log.debug("forwarding failed, will retry: {error}", error=str(failure.value))
        proposal.retry = self.clock.callLater(self.retry_delay, self.submit, proposal)

    def answer(self, client_id: str, seq: int, result: Any) -> None:
        """This node applied the proposal ``(client_id, seq)`` with ``result``."""
        proposal = self.pending.get((client_id, seq))
        if proposal is None:
            return
        if isinstance(result, Stale):
            self.finish(proposal, Failure(Unavailable("superseded by a later proposal")))
        else:
            self.finish(proposal, result)

    def after_advance(self, leader_changed: bool) -> None:
        """Resubmit what may have been lost; called after each Ready."""
        if leader_changed:
            for proposal in list(self.pending.values()):
                self.submit(proposal)
            return
        applied = self.applied()
        for proposal in list(self.pending.values()):
            if 0 < proposal.index <= applied:
                # The log moved past where it was put without it: it was lost
                # with a leader's uncommitted tail.  Submit it again.
                self.submit(proposal)

    def retry_stale(self) -> None:
        now = self.clock.seconds()
        for proposal in list(self.pending.values()):
            if now - proposal.submitted_at >= self.retry_interval:
                self.submit(proposal)

    def expire_overdue(self) -> None:
        """Fail the proposals whose deadline has passed (called every tick:
        one timer for all of them).  They are kept in the order they were
        made, which is the order of their deadlines."""
        now = self.clock.seconds()
        overdue = []
        for proposal in self.pending.values():
            if proposal.deadline > now:
                break
            overdue.append(proposal)
        for proposal in overdue:
            if self.gate.core.leader is None:
                error: Exception = Unavailable("no leader was elected in time")
            else:
                error = CommitTimeout("the write was not committed in time; it may still be")
            self.finish(proposal, Failure(error))

    def _forget(self, proposal: Proposal) -> None:
        """Drop ``proposal`` from the books (done, failed or cancelled)."""
        if self.pending.pop((proposal.client_id, proposal.seq), None) is None:
            return
        if proposal.retry is not None and proposal.retry.active():
            proposal.retry.cancel()
        self._free_slots.append(proposal.slot)

    def finish(self, proposal: Proposal, outcome: Any) -> None:
        if (proposal.client_id, proposal.seq) not in self.pending:
            return
        self._forget(proposal)
        if isinstance(outcome, Failure):
            proposal.deferred.errback(outcome)
        else:
            proposal.deferred.callback(outcome)

    def fail_all(self, reason: str) -> None:
        for proposal in list(self.pending.values()):
            self.finish(proposal, Failure(Unavailable(reason)))
