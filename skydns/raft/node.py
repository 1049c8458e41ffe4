"""The Raft node: the pure core joined to a clock, a disk, a network and the
registry.  It implements `skydns.cluster.ICluster`.

The Ready loop (see ``skydns.raft.core``) runs once per reactor turn in
which anything happened, so every proposal and message that arrived in that
turn shares one ``save`` and one fsync (group commit): persist, then send,
then apply, then ``advance``.  A commit-index-only change is not synced on
its own: the commit index is volatile in Raft (Figure 2) and is written
with the next batch of entries.

Proposals are tagged with a session (``client id``, ``seq``, see
`skydns.raft.envelope`).  The leader appends its own; a follower forwards
them to the leader over the transport and answers only once the entry is
applied locally (read-your-writes on this node).  A proposal is resubmitted
when the leader changes, when a forward fails, or when the log moves past
the index it was given without it: the session table applies it once.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from skydns.cluster import ApplyListener, ICluster, NotLeader
from skydns.commands import Command, CommandDecodeError, decode, encode
from skydns.metrics import Metrics
from skydns.raft import core as raft
from skydns.raft.envelope import OVERHEAD, EnvelopeError, unwrap, wrap
from skydns.raft.log import IRaftStorage, StorageError, StorageFailure
from skydns.raft.messages import AppendEntries, Entry, EntryKind, HardState, Message
from skydns.raft.sessions import SessionTable, Stale
from skydns.raft.transport import (
    BadProposal,
    IRaftHandler,
    IRaftTransport,
    NotLeaderHere,
    PeerUnavailable,
    ProposalTooLarge,
)
from skydns.registry import Applied, Registry

log = Logger()

#: Runs ``storage.save(hard_state, entries)`` off the reactor thread.
SaveInThread = Callable[[HardState | None, Sequence[Entry]], "Deferred[None]"]

#: How long a proposal or a read may wait before it fails (the API's own
#: timeout is longer, so the client sees our clearer error).
PROPOSAL_TIMEOUT = 8.0
#: A proposal not applied this long after it was submitted is submitted again.
RETRY_INTERVAL = 2.0
#: Pause before resubmitting after a failed forward.
RETRY_DELAY = 0.05


@define(eq=False)
class _Proposal:
    client_id: str
    seq: int
    slot: int
    data: bytes
    deferred: Deferred[Applied] = field(init=False)
    timeout: IDelayedCall | None = None
    retry: IDelayedCall | None = None
    index: int = 0
    submitted_at: float = 0.0


@define(eq=False)
class _Read:
    context: bytes
    deferred: Deferred[None] = field(init=False)
    timeout: IDelayedCall | None = None
    index: int | None = None
    issued_at: float = 0.0


@implementer(ICluster, IRaftHandler)
class RaftNode(Service):
    """A member of a Raft cluster that replicates registry commands."""

    def __init__(
        self,
        node_id: str,
        peers: Mapping[str, str | None],
        storage: IRaftStorage,
        transport: IRaftTransport,
        registry: Registry,
        clock: IReactorTime,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        fail_stop: Callable[[str], None] | None = None,
        save_in_thread: SaveInThread | None = None,
        tick_interval: float = 0.05,
        election_tick: int = 10,
        heartbeat_tick: int = 2,
        proposal_timeout: float = PROPOSAL_TIMEOUT,
        max_size_per_msg: int = 60_000,
    ) -> None:
        if node_id not in peers:
            raise ValueError(f"{node_id!r} is not one of the peers {sorted(peers)}")
        self.id = node_id
        self.addresses = dict(peers)
        self.storage = storage
        self.transport = transport
        self.registry = registry
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self.metrics = metrics
        self.fail_stop = fail_stop
        self.save_in_thread = save_in_thread
        #: Set while a save runs in a thread: the core must not be touched
        #: until it is advanced, so what arrives meanwhile waits in the inbox.
        self._saving: Deferred[None] | None = None
        self._inbox: list[Callable[[], None]] = []
        self.tick_interval = tick_interval
        self.proposal_timeout = proposal_timeout
        self.sessions: SessionTable[Applied] = SessionTable()
        self._listeners: list[ApplyListener] = []
        self._proposals: dict[tuple[str, int], _Proposal] = {}
        self._slots_free: list[int] = []
        self._slots = 0
        self._seqs: dict[int, int] = {}
        self._reads: dict[bytes, _Read] = {}
        self._read_counter = 0
        self._incarnation = f"{self.rng.getrandbits(48):012x}"
        self._pending_call: IDelayedCall | None = None
        self._loop: LoopingCall | None = None
        self._ticks = 0
        self._failed: str | None = None
        #: (term, commit index) from the latest AppendEntries of a leader.
        self._leader_commit = (0, 0)
        self._leader: str | None = None
        self._role = raft.Role.FOLLOWER
        self._leader_changed = False

        hard_state, snapshot, entries = storage.load()
        if snapshot is not None:
            raise StorageError(
                f"the log starts after a snapshot at index {snapshot.index}, which this "
                "version cannot restore"
            )
        self.core = raft.RaftCore(
            node_id,
            sorted(peers),
            raft.RestoredState(hard_state, tuple(entries)),
            self.rng,
            election_tick=election_tick,
            heartbeat_tick=heartbeat_tick,
            max_size_per_msg=max_size_per_msg,
        )
        self._saved_hs = self._latest_hs = hard_state
        self._applied = 0
        #: Entries up to here were in the log at start-up: applying them is a
        #: replay, never "live" (no callbacks are sent for them again).
        self._startup_last = self.core.log.last_index()
        self._process()  # replay the committed log into the registry now
        log.info(
            "raft node {id} loaded term {term}, {count} entries, replayed to {applied}",
            id=node_id, term=hard_state.term, count=len(entries), applied=self._applied,
        )  # fmt: skip

    # --- service ------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.transport.start(self)
        loop = self._loop = LoopingCall(self._tick)
        loop.clock = self.clock
        loop.start(self.tick_interval, now=False).addErrback(
            lambda f: log.failure("raft tick loop failed", f)
        )
        if self.core.config.voters == frozenset({self.id}):
            # A cluster of one needs no election timeout to elect itself.
            self._with_core(lambda: self.core.campaign(prevote=False))

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._halt("this node is shutting down")
        if not self._failed and self._latest_hs != self._saved_hs:
            try:
                self.storage.save(self._latest_hs, ())
                self._saved_hs = self._latest_hs
            except StorageFailure as e:
                log.critical("cannot save the hard state on shutdown: {error}", error=str(e))
        d = self.transport.stop()
        saving = self._saving

        async def close() -> None:
            await d
            if saving is not None:
                await saving
            self.storage.close()

        return Deferred.fromCoroutine(close())

    def _halt(self, reason: str) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._pending_call is not None and self._pending_call.active():
            self._pending_call.cancel()
        self._pending_call = None
        for proposal in list(self._proposals.values()):
            self._finish(proposal, Failure(NotLeader(reason)))
        for read in list(self._reads.values()):
            self._finish_read(read, Failure(NotLeader(reason)))

    # --- the Ready loop -----------------------------------------------------

    def _schedule(self) -> None:
        if self._pending_call is None and not self._failed:
            self._pending_call = self.clock.callLater(0, self._process)

    def _tick(self) -> None:
        if self._failed:
            return
        self._ticks += 1
        self._with_core(self.core.tick)
        if self._ticks % max(1, round(0.5 / self.tick_interval)) == 0:
            self._retry_stale()

    def _with_core(self, call: Callable[[], object]) -> None:
        """Run ``call`` (which steps the core) now, or after the save under way."""
        if self._saving is not None:
            self._inbox.append(call)  # type: ignore[arg-type]
            return
        call()
        self._schedule()

    def _process(self) -> None:
        self._pending_call = None
        while not self._failed and self._saving is None and self.core.has_ready():
            rd = self.core.ready()
            self._observe(rd.soft_state)
            if rd.hard_state is not None:
                self._latest_hs = rd.hard_state
            hs, saved = self._latest_hs, self._saved_hs
            if not rd.entries and (hs.term, hs.vote) == (saved.term, saved.vote):
                self._finish_ready(rd)  # a commit-only change waits for the next save
                continue
            start = self.clock.seconds()
            to_save = hs if hs != saved else None
            if self.save_in_thread is not None:
                saving = self._saving = self.save_in_thread(to_save, rd.entries)
                saving.addCallbacks(self._saved, self._save_failed,
                                    callbackArgs=(rd, hs, start))  # fmt: skip
                saving.addErrback(lambda f: log.failure("after a save", f))
                return
            try:
                self.storage.save(to_save, rd.entries)
            except StorageFailure as e:
                self._fail(e)
                return
            self._saved(None, rd, hs, start)
        self._update_metrics()

    def _saved(self, _: object, rd: raft.Ready, hs: HardState, start: float) -> None:
        self._saving = None
        self._saved_hs = hs
        if self.metrics is not None:
            self.metrics.fsync_latency.observe(max(0.0, self.clock.seconds() - start))
        if self._failed or (self.save_in_thread is not None and not self.running):
            return
        self._finish_ready(rd)
        inbox, self._inbox = self._inbox, []
        for call in inbox:
            call()
        if self.save_in_thread is not None:
            self._process()

    def _save_failed(self, failure: Failure) -> None:
        self._saving = None
        self._inbox = []
        if failure.check(StorageFailure):
            self._fail(failure.value)  # type: ignore[arg-type]
        else:
            self._fail(StorageFailure(f"save failed: {failure.getErrorMessage()}"))

    def _finish_ready(self, rd: raft.Ready) -> None:
        """Send, apply and advance: the Ready's entries and hard state are durable."""
        for message in rd.messages:
            self.transport.send(message)
        done = self._apply(rd.committed_entries)
        self.core.advance(rd)
        self._serve_reads(rd.read_states)
        for fire in done:
            fire()
        self._after_advance()

    def _observe(self, soft: raft.SoftState | None) -> None:
        if soft is None:
            return
        if soft.role is not self._role:
            if self.metrics is not None and (
                soft.role is raft.Role.CANDIDATE
                or (soft.role is raft.Role.LEADER and self._role is not raft.Role.CANDIDATE)
            ):
                self.metrics.raft_elections.inc()
            log.info("raft role {role} at term {term}", role=soft.role.value, term=self.core.term)
            self._role = soft.role
        if soft.leader != self._leader:
            self._leader = soft.leader
            if soft.leader is not None:
                if self.metrics is not None:
                    self.metrics.raft_leader_changes.inc()
                log.info("raft leader is {leader} at term {term}", leader=soft.leader,
                         term=self.core.term)  # fmt: skip
                self._leader_changed = True

    def _after_advance(self) -> None:
        """Work that calls back into the core, so must wait for ``advance``."""
        if self._leader_changed:
            self._leader_changed = False
            for proposal in list(self._proposals.values()):
                self._submit(proposal)
            for read in list(self._reads.values()):
                if read.index is None:
                    self._issue_read(read)
            return
        for proposal in list(self._proposals.values()):
            if 0 < proposal.index <= self._applied:
                # The log moved past where it was put without it: it was lost
                # with a leader's uncommitted tail.  Submit it again.
                self._submit(proposal)

    def _update_metrics(self) -> None:
        m = self.metrics
        if m is None:
            return
        role = self.core.role
        m.set_role("leader" if role is raft.Role.LEADER else
                   "follower" if role is raft.Role.FOLLOWER else "candidate")  # fmt: skip
        m.raft_term.set(self.core.term)
        m.raft_commit.set(self.core.log.committed)
        m.raft_applied.set(self._applied)

    def _fail(self, error: StorageFailure) -> None:
        """Fail-stop: after a failed write or sync nothing may be acknowledged."""
        self._failed = str(error)
        log.critical("raft storage failed, stopping this node: {error}", error=str(error))
        self._halt("this node's storage failed")
        if self.fail_stop is not None:
            self.fail_stop(str(error))

    # --- applying -----------------------------------------------------------

    def _apply(self, entries: tuple[Entry, ...]) -> list[Callable[[], None]]:
        done: list[Callable[[], None]] = []
        for entry in entries:
            if entry.kind is EntryKind.NORMAL:
                self._apply_entry(entry, done)
            self._applied = entry.index
        if entries:
            for read in list(self._reads.values()):
                if read.index is not None and read.index <= self._applied:
                    done.append(functools.partial(self._finish_read, read, None))
        return done

    def _apply_entry(self, entry: Entry, done: list[Callable[[], None]]) -> None:
        try:
            envelope = unwrap(entry.data)
            command = decode(envelope.payload)
        except (EnvelopeError, CommandDecodeError) as e:
            # Deterministic on every node: the entry is skipped everywhere.
            log.error("log entry {index} is not a command, skipped: {error}",
                      index=entry.index, error=str(e))  # fmt: skip
            return
        ran: list[Applied] = []

        def run() -> Applied:
            ran.append(self.registry.apply(command))
            return ran[0]

        result = self.sessions.apply(envelope.client_id, envelope.seq, run)
        if ran:
            live = self.core.role is raft.Role.LEADER and entry.index > self._startup_last
            self._notify(command, ran[0], live)
        proposal = self._proposals.get((envelope.client_id, envelope.seq))
        if proposal is not None:
            outcome: Applied | Failure
            if isinstance(result, Stale):
                outcome = Failure(NotLeader("the proposal was superseded by a later one"))
            else:
                outcome = result
            done.append(lambda: self._finish(proposal, outcome))

    def _notify(self, command: Command, applied: Applied, live: bool) -> None:
        for listener in list(self._listeners):
            try:
                listener(command, applied, live)
            except Exception:
                log.failure("apply listener {listener!r} failed", listener=listener)

    # --- proposals ----------------------------------------------------------

    def propose(self, command: Command) -> Deferred[Applied]:
        if self._failed or not self.running:
            return fail(NotLeader("this node is not running"))
        payload = encode(command)
        if len(payload) > self._max_payload():
            return fail(ProposalTooLarge(len(payload)))
        slot = self._slots_free.pop() if self._slots_free else self._new_slot()
        seq = self._seqs[slot] = self._seqs[slot] + 1
        client_id = f"{self.id}.{self._incarnation}.{slot}"
        proposal = _Proposal(client_id, seq, slot, wrap(client_id, seq, payload))
        proposal.deferred = Deferred(lambda _: self._forget(proposal))
        proposal.timeout = self.clock.callLater(self.proposal_timeout, self._expire, proposal)
        self._proposals[(client_id, seq)] = proposal
        self._submit(proposal)
        return proposal.deferred

    def _max_payload(self) -> int:
        from skydns.raft.transport import MAX_PROPOSAL_BYTES

        return MAX_PROPOSAL_BYTES - OVERHEAD - 80  # room for the client id

    def _new_slot(self) -> int:
        self._slots += 1
        self._seqs[self._slots] = 0
        return self._slots

    def _submit(self, proposal: _Proposal) -> None:
        if (proposal.client_id, proposal.seq) not in self._proposals or self._failed:
            return
        if self._saving is not None and self.core.role is raft.Role.LEADER:
            self._inbox.append(functools.partial(self._submit, proposal))
            return
        if proposal.retry is not None and proposal.retry.active():
            proposal.retry.cancel()
        proposal.retry = None
        proposal.submitted_at = self.clock.seconds()
        proposal.index = 0
        if self.core.role is raft.Role.LEADER:
            try:
                proposal.index = self.core.propose(proposal.data)
            except (raft.NotLeader, raft.ProposalDropped):
                return  # resubmitted when a leader is known
            self._schedule()
            return
        leader = self.core.leader
        if leader is None or leader == self.id:
            return  # resubmitted when a leader is known
        d = self.transport.forward(leader, proposal.data)
        d.addCallbacks(self._forwarded, self._forward_failed,
                       callbackArgs=(proposal,), errbackArgs=(proposal,))  # fmt: skip
        d.addErrback(lambda f: log.failure("forwarding a proposal", f))

    def _forwarded(self, answer: tuple[int, int], proposal: _Proposal) -> None:
        if (proposal.client_id, proposal.seq) not in self._proposals:
            return
        index, _term = answer
        proposal.index = index
        if index <= self._applied:
            self._submit(proposal)  # lost already: see _after_advance

    def _forward_failed(self, failure: Failure, proposal: _Proposal) -> None:
        failure.trap(NotLeaderHere, PeerUnavailable, BadProposal, ProposalTooLarge)
        if (proposal.client_id, proposal.seq) not in self._proposals:
            return
        if failure.check(BadProposal, ProposalTooLarge):
            self._finish(proposal, failure)
            return
        log.debug("forwarding failed, will retry: {error}", error=str(failure.value))
        proposal.retry = self.clock.callLater(RETRY_DELAY, self._submit, proposal)

    def _retry_stale(self) -> None:
        now = self.clock.seconds()
        for proposal in list(self._proposals.values()):
            if now - proposal.submitted_at >= RETRY_INTERVAL:
                self._submit(proposal)
        for read in list(self._reads.values()):
            if read.index is None and now - read.issued_at >= RETRY_INTERVAL:
                self._issue_read(read)

    def _expire(self, proposal: _Proposal) -> None:
        proposal.timeout = None
        if self.core.leader is None:
            error: Exception = NotLeader("no leader was elected in time")
        else:
            error = TimeoutError("the write was not committed in time; it may still be applied")
        self._finish(proposal, Failure(error))

    def _forget(self, proposal: _Proposal) -> None:
        """Drop ``proposal`` from the books (done, failed or cancelled)."""
        if self._proposals.pop((proposal.client_id, proposal.seq), None) is None:
            return
        for call in (proposal.timeout, proposal.retry):
            if call is not None and call.active():
                call.cancel()
        self._slots_free.append(proposal.slot)

    def _finish(self, proposal: _Proposal, outcome: Applied | Failure) -> None:
        if (proposal.client_id, proposal.seq) not in self._proposals:
            return
        self._forget(proposal)
        if isinstance(outcome, Failure):
            proposal.deferred.errback(outcome)
        else:
            proposal.deferred.callback(outcome)

    # --- forwarded proposals (IRaftHandler) -------------------------------------

    def accept_proposal(self, data: bytes) -> Deferred[tuple[int, int]]:
        if self._saving is None:
            return maybeDeferred(self._accept, data)
        accepted: Deferred[tuple[int, int]] = Deferred()

        def later() -> None:
            maybeDeferred(self._accept, data).chainDeferred(accepted)

        self._inbox.append(later)
        return accepted

    def _accept(self, data: bytes) -> tuple[int, int]:
        if self._failed or not self.running or self.core.role is not raft.Role.LEADER:
            leader = self.core.leader
            raise NotLeaderHere(None if leader == self.id else leader)
        try:
            envelope = unwrap(data)
            decode(envelope.payload)
        except (EnvelopeError, CommandDecodeError) as e:
            raise BadProposal(str(e)) from e
        if len(envelope.payload) > self._max_payload():
            raise ProposalTooLarge(len(envelope.payload))
        try:
            index = self.core.propose(data)
        except (raft.NotLeader, raft.ProposalDropped) as e:
            raise NotLeaderHere(None) from e
        self._schedule()
        return index, self.core.term

    def receive(self, message: Message) -> None:
        if self._failed or not self.running:
            return
        if message.dst != self.id or message.src == self.id or message.src not in self.addresses:
            log.warn("dropped a {kind} from {src} to {dst}: not for this cluster member",
                     kind=type(message).__name__, src=message.src, dst=message.dst)  # fmt: skip
            return
        self._with_core(functools.partial(self._step, message))

    def _step(self, message: Message) -> None:
        try:
            self.core.step(message)
        except Exception:
            log.failure("the Raft core refused a {kind} from {src}",
                        kind=type(message).__name__, src=message.src)  # fmt: skip
        else:
            if isinstance(message, AppendEntries) and message.term == self.core.term:
                # Heartbeats carry a commit index capped at what we hold, so
                # only AppendEntries tells us the leader's own commit index.
                term, commit = self._leader_commit
                if term != message.term:
                    commit = 0
                self._leader_commit = (message.term, max(commit, message.commit))

    # --- reads --------------------------------------------------------------

    def read_barrier(self) -> Deferred[None]:
        if self._failed or not self.running:
            return fail(NotLeader("this node is not running"))
        self._read_counter += 1
        read = _Read(f"{self.id}/{self._incarnation}/{self._read_counter}".encode())
        read.deferred = Deferred(lambda _: self._forget_read(read))
        read.timeout = self.clock.callLater(
            self.proposal_timeout, self._finish_read, read, Failure(NotLeader("no read in time"))
        )
        self._reads[read.context] = read
        self._issue_read(read)
        return read.deferred

    def _issue_read(self, read: _Read) -> None:
        read.issued_at = self.clock.seconds()
        self._with_core(functools.partial(self._read_index, read))

    def _read_index(self, read: _Read) -> None:
        if read.context not in self._reads:
            return
        try:
            self.core.read_index(read.context)
        except raft.NotLeader:
            pass  # issued again when a leader is known

    def _serve_reads(self, states: tuple[raft.ReadState, ...]) -> None:
        for state in states:
            read = self._reads.get(state.context)
            if read is None or read.index is not None:
                continue
            read.index = state.index
            if state.index <= self._applied:
                self._finish_read(read, None)

    def _forget_read(self, read: _Read) -> None:
        if self._reads.pop(read.context, None) is not None:
            if read.timeout is not None and read.timeout.active():
                read.timeout.cancel()

    def _finish_read(self, read: _Read, failure: Failure | None) -> None:
        if read.context not in self._reads:
            return
        self._forget_read(read)
        if failure is None:
            read.deferred.callback(None)
        else:
            read.deferred.errback(failure)

    # --- ICluster -----------------------------------------------------------

    def is_leader(self) -> bool:
        return not self._failed and self.core.role is raft.Role.LEADER

    def is_ready(self) -> bool:
        core = self.core
        if self._failed or core.leader is None:
            return False
        if core.role is raft.Role.LEADER:
            term_committed = core.log.term(core.log.committed) == core.term
            return term_committed and self._applied >= core.log.committed
        # Ready once we have applied what the leader had committed when we
        # last heard, counting only a commit index of the leader's own term
        # (before its first entry commits, its commit index may lag ours).
        term, commit = self._leader_commit
        if term != core.term or core.log.term(commit) != core.term:
            return False
        return self._applied >= max(commit, core.log.committed)

    def add_apply_listener(self, listener: ApplyListener) -> None:
        self._listeners.append(listener)

    @property
    def applied_index(self) -> int:
        return self._applied

    def status(self) -> dict[str, Any]:
        core = self.core
        leader = core.leader
        role = core.role
        members = []
        for member in sorted(self.addresses):
            if member == self.id:
                name = "candidate" if role in (raft.Role.CANDIDATE, raft.Role.PRE_CANDIDATE) \
                    else role.value
            elif member == leader:
                name = "leader"
            elif member in core.config.learners:
                name = "learner"
            else:
                name = "follower"
            members.append({"id": member, "address": self.addresses[member], "role": name})
        return {
            "id": self.id,
            "leader": leader,
            "term": core.term,
            "commit_index": core.log.committed,
            "applied_index": self._applied,
            "last_index": core.log.last_index(),
            "role": members[sorted(self.addresses).index(self.id)]["role"],
            "ready": self.is_ready(),
            "failed": self._failed,
            "members": members,
        }


__all__ = ["RaftNode"]
