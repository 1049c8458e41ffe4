"""Client requests a Raft node carries until they are answered: proposals
and linearizable reads.

A proposal is tagged with a session (``client id``, ``seq``; see
`skydns.raft.node.envelope`).  The client id names this node, this run of it
and a *slot*: a slot carries one proposal at a time, so the session table,
which remembers each client's latest request, dedupes retries exactly
(Raft thesis §6.3).  A proposal is submitted to the leader (appended
locally, or forwarded) and submitted again when the leader changes, when a
forward fails, when the log moves past the index it was given without it,
or when it has waited `RETRY_INTERVAL`; it is answered when this node
applies it (read-your-writes), or fails at its deadline.

A read asks the leader for a read index (ReadIndex, thesis §6.4) and is
answered once this node has applied up to it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from attrs import define, field
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from skydns.cluster import NotLeader
from skydns.commands import Command, encode
from skydns.raft.core import raft
from skydns.raft.core.ready import ReadState
from skydns.raft.net.interface import (
    MAX_PROPOSAL_BYTES,
    BadProposal,
    NotLeaderHere,
    PeerUnavailable,
    ProposalTooLarge,
)
from skydns.raft.node.envelope import OVERHEAD, wrap
from skydns.raft.node.sessions import Stale
from skydns.registry import Applied

if TYPE_CHECKING:
    from skydns.raft.node.driver import RaftNode

log = Logger()

#: A proposal not applied this long after it was submitted is submitted again.
RETRY_INTERVAL = 2.0
#: Pause before resubmitting after a failed forward.
RETRY_DELAY = 0.05
#: The largest command accepted: an entry's data is the command in an envelope.
MAX_COMMAND_BYTES = MAX_PROPOSAL_BYTES - OVERHEAD - 80  # 80: room for the client id


@define(eq=False)
class Proposal:
    client_id: str
    seq: int
    slot: int
    data: bytes
    deferred: Deferred[Applied] = field(init=False)
    #: When it fails if not applied by then (`Requests.expire_overdue`).
    deadline: float = 0.0
    retry: IDelayedCall | None = None
    index: int = 0
    submitted_at: float = 0.0


@define(eq=False)
class Read:
    context: bytes
    deferred: Deferred[None] = field(init=False)
    timeout: IDelayedCall | None = None
    index: int | None = None
    issued_at: float = 0.0


class Requests:
    """The proposals and reads of one `RaftNode` that await an answer."""

    def __init__(self, node: RaftNode, incarnation: str, timeout: float) -> None:
        self.node = node
        self.incarnation = incarnation
        self.timeout = timeout
        self.proposals: dict[tuple[str, int], Proposal] = {}
        self.reads: dict[bytes, Read] = {}
        self._free_slots: list[int] = []
        #: Submitted on the leader, not yet appended (see `append_batch`).
        self._batch: dict[tuple[str, int], Proposal] = {}
        self._seqs: dict[int, int] = {}
        self._read_counter = 0

    # --- proposals ----------------------------------------------------------

    def propose(self, command: Command) -> Deferred[Applied]:
        payload = encode(command)
        if len(payload) > MAX_COMMAND_BYTES:
            return fail(ProposalTooLarge(len(payload)))
        if self._free_slots:
            slot = self._free_slots.pop()
        else:
            slot = len(self._seqs) + 1
            self._seqs[slot] = 0
        seq = self._seqs[slot] = self._seqs[slot] + 1
        client_id = f"{self.node.id}.{self.incarnation}.{slot}"
        proposal = Proposal(client_id, seq, slot, wrap(client_id, seq, payload))
        proposal.deferred = Deferred(lambda _: self._forget(proposal))
        proposal.deadline = self.node.clock.seconds() + self.timeout
        self.proposals[(client_id, seq)] = proposal
        self.submit(proposal)
        return proposal.deferred

    def submit(self, proposal: Proposal) -> None:
        node, core = self.node, self.node.core
        if (proposal.client_id, proposal.seq) not in self.proposals or node.failed:
            return
        if proposal.retry is not None and proposal.retry.active():
            proposal.retry.cancel()
        proposal.retry = None
        proposal.submitted_at = node.clock.seconds()
        proposal.index = 0
        if core.role is raft.Role.LEADER:
            # Appended with the others submitted meanwhile, by `append_batch`.
            self._batch[(proposal.client_id, proposal.seq)] = proposal
            node.schedule()
            return
        leader = core.leader
        if leader is None or leader == node.id:
            return  # submitted again when a leader is known
        d = node.transport.forward(leader, proposal.data)
        d.addCallbacks(self._forwarded, self._forward_failed,
                       callbackArgs=(proposal,), errbackArgs=(proposal,))  # fmt: skip
        d.addErrback(lambda f: log.failure("forwarding a proposal", f))

    def append_batch(self) -> None:
        """Append the proposals submitted on the leader since the last call
        to its log, in the order they came, with one `propose_many` (the node
        calls this before it takes a Ready, never while a save is under
        way): under load, one AppendEntries per follower then carries all of
        them, and the proposals that came during a save go out together."""
        batch = [p for key, p in self._batch.items() if key in self.proposals]
        self._batch.clear()
        if not batch or self.node.failed:
            return
        try:
            first = self.node.core.propose_many([p.data for p in batch])
        except (raft.NotLeader, raft.ProposalDropped):
            return  # submitted again when a leader is known
        for offset, proposal in enumerate(batch):
            proposal.index = first + offset

    def _forwarded(self, answer: tuple[int, int], proposal: Proposal) -> None:
        if (proposal.client_id, proposal.seq) not in self.proposals:
            return
        proposal.index = answer[0]
        if proposal.index <= self.node.applied_index:
            self.submit(proposal)  # lost already: see after_advance

    def _forward_failed(self, failure: Failure, proposal: Proposal) -> None:
        failure.trap(NotLeaderHere, PeerUnavailable, BadProposal, ProposalTooLarge)
        if (proposal.client_id, proposal.seq) not in self.proposals:
            return
        if failure.check(BadProposal, ProposalTooLarge):
            self.finish(proposal, failure)
            return
        log.debug("forwarding failed, will retry: {error}", error=str(failure.value))
        proposal.retry = self.node.clock.callLater(RETRY_DELAY, self.submit, proposal)

    @staticmethod
    def outcome(result: Applied | Stale) -> Applied | Failure:
        """What a waiting proposal is answered with, given its application."""
        if isinstance(result, Stale):
            return Failure(NotLeader("the proposal was superseded by a later one"))
        return result

    def after_advance(self, leader_changed: bool) -> None:
        """Resubmit what may have been lost; called after ``advance``."""
        if leader_changed:
            for proposal in list(self.proposals.values()):
                self.submit(proposal)
            for read in list(self.reads.values()):
                if read.index is None:
                    self.issue_read(read)
            return
        applied = self.node.applied_index
        for proposal in list(self.proposals.values()):
            if 0 < proposal.index <= applied:
                # The log moved past where it was put without it: it was lost
                # with a leader's uncommitted tail.  Submit it again.
                self.submit(proposal)

    def retry_stale(self) -> None:
        now = self.node.clock.seconds()
        for proposal in list(self.proposals.values()):
            if now - proposal.submitted_at >= RETRY_INTERVAL:
                self.submit(proposal)
        for read in list(self.reads.values()):
            if read.index is None and now - read.issued_at >= RETRY_INTERVAL:
                self.issue_read(read)

    def expire_overdue(self) -> None:
        """Fail the proposals whose deadline has passed (the node calls this
        every tick: one timer for all of them rather than one each).

        Proposals are kept in the order they were made, which is the order
        of their deadlines, so only the overdue ones and one more are looked at.
        """
        now = self.node.clock.seconds()
        overdue = []
        for proposal in self.proposals.values():
            if proposal.deadline > now:
                break
            overdue.append(proposal)
        for proposal in overdue:
            self._expire(proposal)

    def _expire(self, proposal: Proposal) -> None:
        if self.node.core.leader is None:
            error: Exception = NotLeader("no leader was elected in time")
        else:
            error = TimeoutError("the write was not committed in time; it may still be applied")
        self.finish(proposal, Failure(error))

    def _forget(self, proposal: Proposal) -> None:
        """Drop ``proposal`` from the books (done, failed or cancelled)."""
        if self.proposals.pop((proposal.client_id, proposal.seq), None) is None:
            return
        if proposal.retry is not None and proposal.retry.active():
            proposal.retry.cancel()
        self._free_slots.append(proposal.slot)

    def finish(self, proposal: Proposal, outcome: Applied | Failure) -> None:
        if (proposal.client_id, proposal.seq) not in self.proposals:
            return
        self._forget(proposal)
        if isinstance(outcome, Failure):
            proposal.deferred.errback(outcome)
        else:
            proposal.deferred.callback(outcome)

    def fail_all(self, reason: str) -> None:
        for proposal in list(self.proposals.values()):
            self.finish(proposal, Failure(NotLeader(reason)))
        for read in list(self.reads.values()):
            self.finish_read(read, Failure(NotLeader(reason)))

    # --- reads --------------------------------------------------------------

    def read_barrier(self) -> Deferred[None]:
        self._read_counter += 1
        read = Read(f"{self.node.id}/{self.incarnation}/{self._read_counter}".encode())
        read.deferred = Deferred(lambda _: self._forget_read(read))
        read.timeout = self.node.clock.callLater(
            self.timeout, self.finish_read, read, Failure(NotLeader("no read index in time"))
        )
        self.reads[read.context] = read
        self.issue_read(read)
        return read.deferred

    def issue_read(self, read: Read) -> None:
        read.issued_at = self.node.clock.seconds()
        self.node.with_core(functools.partial(self._read_index, read))

    def _read_index(self, read: Read) -> None:
        if read.context not in self.reads:
            return
        try:
            self.node.core.read_index(read.context)
        except raft.NotLeader:
            pass  # issued again when a leader is known

    def serve_reads(self, states: tuple[ReadState, ...]) -> None:
        for state in states:
            read = self.reads.get(state.context)
            if read is None or read.index is not None:
                continue
            read.index = state.index
            if state.index <= self.node.applied_index:
                self.finish_read(read, None)

    def reads_applied(self, applied: int) -> list[Read]:
        """Reads whose index ``applied`` has reached."""
        return [r for r in self.reads.values() if r.index is not None and r.index <= applied]

    def _forget_read(self, read: Read) -> None:
        if self.reads.pop(read.context, None) is not None:
            if read.timeout is not None and read.timeout.active():
                read.timeout.cancel()

    def finish_read(self, read: Read, failure: Failure | None) -> None:
        if read.context not in self.reads:
            return
        self._forget_read(read)
        if failure is None:
            read.deferred.callback(None)
        else:
            read.deferred.errback(failure)
