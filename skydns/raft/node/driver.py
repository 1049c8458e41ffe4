"""The Raft node: the pure core driven against a clock, a disk, a network and
a state machine, all given to it (`RaftNode`).

The Ready loop runs once per reactor turn in which anything happened (group
commit): it persists the Ready (off the reactor thread when ``in_thread`` is
given; meanwhile whatever would step the core waits in the `CoreGate`),
sends its messages (only a leader's AppendEntries and heartbeats before its
own save is durable, thesis §10.2.1), applies the committed entries and
advances (docs/raft.md).  The parts, each with the few collaborators it
uses: `Proposals`, `Reads`, `Members`, `Snapshotter`, `Health`, `Condition`,
`LeaderRequests` and the `Inbox` the transport delivers to.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from skydns.raft.core.messages import AppendEntries, HardState, Heartbeat, InstallSnapshot
from skydns.raft.core.raft import RaftCore
from skydns.raft.core.ready import Ready, Role
from skydns.raft.net.interface import IRaftTransport
from skydns.raft.node.applier import Applier
from skydns.raft.node.asking import LeaderRequests
from skydns.raft.node.coalesce import coalesce
from skydns.raft.node.condition import Condition
from skydns.raft.node.errors import Unavailable
from skydns.raft.node.gate import CoreGate
from skydns.raft.node.health import Health, RaftMetrics
from skydns.raft.node.inbox import Inbox
from skydns.raft.node.lifecycle import begin_recovery, close, end_recovery, restore
from skydns.raft.node.machine import IStateMachine
from skydns.raft.node.members import Addresses, Members
from skydns.raft.node.options import DEFAULT_OPTIONS, NodeOptions
from skydns.raft.node.proposals import Proposals
from skydns.raft.node.reads import Reads
from skydns.raft.node.snapshotter import InThread, Snapshotter, StepLater
from skydns.raft.storage.errors import StorageFailure
from skydns.raft.storage.interface import IRaftStorage

log = Logger()

#: What a leader may send before its own entries are durable.
_EARLY = (AppendEntries, Heartbeat)


class RaftNode(Service):
    """A member of a Raft cluster that replicates a state machine's commands."""

    def __init__(
        self,
        node_id: str,
        peers: Mapping[str, str | None],
        storage: IRaftStorage,
        transport: IRaftTransport,
        machine: IStateMachine,
        clock: IReactorTime,
        options: NodeOptions = DEFAULT_OPTIONS,
        rng: random.Random | None = None,
        metrics: RaftMetrics | None = None,
        fail_stop: Callable[[str], None] | None = None,
        in_thread: InThread | None = None,
        step_later: StepLater | None = None,
        schedule: Callable[[Callable[[], None]], object] | None = None,
    ) -> None:
        """``in_thread`` runs saves, snapshot writes and snapshot decoding
        off the reactor thread (without it they run at once); ``step_later``
        spreads a snapshot's encoding over reactor turns; ``schedule`` runs
        the Ready loop soon (by default ``clock.callLater(0, ...)``)."""
        if node_id not in peers:
            raise ValueError(f"{node_id!r} is not one of the peers {sorted(peers)}")
        self.id = node_id
        self.storage = storage
        self.transport = transport
        self.machine = machine
        self.clock = clock
        self.options = options
        self.rng = rng if rng is not None else random.Random()
        self.metrics = metrics
        self.fail_stop = fail_stop
        self.in_thread = in_thread
        self._schedule = schedule or (lambda f: clock.callLater(0, f))
        self.condition = Condition()
        self._wake_pending = self._leader_changed = False
        self._saving: Deferred[None] | None = None  # the save under way in a thread
        self._loop: LoopingCall | None = None
        self._ticks = 0

        loaded, core, snapshot, entries, stored = restore(
            node_id, peers, storage, machine, options, self.rng
        )
        self.condition.recovering = loaded.recovering
        self._saved_hs = self._latest_hs = loaded.hard_state
        self.gate = CoreGate(core, self.wake)
        self.applier = Applier(machine, applied=snapshot.index, startup_last=core.log.last_index())
        addresses: Addresses = dict(peers)
        self.members = Members(self.gate, transport, addresses, self.condition,
                               self.mark_removed, joining=options.joining,
                               leader_commit=lambda: self.health.leader_commit[1])  # fmt: skip
        self.snapshots = Snapshotter(
            storage, machine, self.applier, self.members, self.gate, transport.send,
            lambda m: self.inbox.deliver_snapshot(m), clock, self.condition, self.fail,
            self.rng, options.snapshot_entries, options.keep_entries, in_thread, step_later,
        )  # fmt: skip
        if stored is not None:
            self.snapshots.restore_stored(*stored)
        incarnation = f"{self.rng.getrandbits(48):012x}"
        self.proposals = Proposals(
            f"{node_id}.{incarnation}", self.gate, transport.forward, clock,
            self._applied_index, self.condition, options.proposal_timeout,
            options.retry_interval, options.retry_delay,
        )  # fmt: skip
        self.reads = Reads(f"{node_id}/{incarnation}", self.gate, clock, self._applied_index,
                           options.proposal_timeout, options.retry_interval)  # fmt: skip
        self.health = Health(self.gate, addresses, self.condition, self._applied_index,
                             metrics, self.members.replicas)  # fmt: skip
        #: The application's requests to the leader, no log entry each.
        self.leader_requests = LeaderRequests(node_id, self.gate, self.condition, transport.ask)
        #: What the transport calls (`IRaftHandler`).
        self.inbox = Inbox(node_id, self.gate, self.condition, machine, self.members,
                           self.health, self.snapshots.receive, self.mark_removed,
                           self.leader_requests.answer)  # fmt: skip
        self.members.refresh()
        self._process()  # replay the committed log into the state machine now
        log.info(
            "raft node {id} loaded term {term}, {count} entries, replayed to {applied}",
            id=node_id, term=loaded.hard_state.term, count=len(entries),
            applied=self.applied_index,
        )  # fmt: skip

    @property
    def core(self) -> RaftCore:
        return self.gate.core

    @property
    def addresses(self) -> Addresses:
        return self.members.addresses

    def _applied_index(self) -> int:
        return self.applier.applied

    applied_index = property(_applied_index)

    # --- service ------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.condition.running = True
        self.transport.start(self.inbox)
        if self.condition.removed is not None:
            return  # it keeps answering from its last state, nothing more
        loop = self._loop = LoopingCall(self._tick)
        loop.clock = self.clock
        loop.start(self.options.tick_interval, now=False).addErrback(
            lambda f: log.failure("raft tick loop failed", f)
        )
        if self.core.config.voters == frozenset({self.id}) and self.core.promotable():
            # A cluster of one needs no election timeout to elect itself.
            self.gate.run(lambda core: core.campaign(prevote=False))

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self.condition.running = False
        self._halt("this node is shutting down")
        stopping = self.transport.stop()

        return Deferred.fromCoroutine(
            close(stopping, self.storage, (self._saving, self.snapshots.taking), self._unsaved)
        )

    def _unsaved(self) -> HardState | None:
        """The hard state to save at shutdown: the latest, unless it is
        durable already or the storage failed."""
        if self.condition.failed or self._latest_hs == self._saved_hs:
            return None
        return self._latest_hs

    def _halt(self, reason: str) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        self.proposals.fail_all(reason)
        self.reads.fail_all(reason)
        self.members.fail_all(reason)

    # --- the Ready loop -----------------------------------------------------

    def wake(self) -> None:
        """Run the Ready loop soon (once, however often this is called)."""
        if not self._wake_pending and not self.condition.failed:
            self._wake_pending = True
            self._schedule(self._process)

    def _tick(self) -> None:
        if self.condition.failed or self.condition.removed is not None:
            return
        self._ticks += 1
        self.gate.run(lambda core: core.tick())
        self.gate.run(self.members.tick)
        self.proposals.expire_overdue()
        every = max(1, round(self.options.retry_interval / 4 / self.options.tick_interval))
        if self._ticks % every == 0:
            self.proposals.retry_stale()
            self.reads.reissue(everything=False)

    def _process(self) -> None:
        self._wake_pending = False
        if self.gate.saving or self.condition.failed:
            return
        self.proposals.append_batch()
        core = self.core
        while not self.condition.failed and not self.gate.saving and core.has_ready():
            rd = core.ready()
            if self.health.observe(rd.soft_state):
                self._leader_changed = True
            if rd.hard_state is not None:
                self._latest_hs = rd.hard_state
            if rd.lost is not None and not self._begin_recovery(rd.lost):
                return
            if rd.snapshot is not None and not self._install(rd):
                return
            hs, saved = self._latest_hs, self._saved_hs
            if not rd.entries and (hs.term, hs.vote) == (saved.term, saved.vote):
                self._finish(rd)  # nothing to make durable (a commit-only change waits)
                continue
            to_save = hs if hs != saved else None
            start = self.clock.seconds()
            if self.in_thread is not None:
                early = self._send_early(rd, hs, saved)
                self.gate.saving = True
                saving = self._saving = self.in_thread(self.storage.save, to_save, rd.entries)
                saving.addCallbacks(self._saved, self._save_failed,
                                    callbackArgs=(rd, hs, start, early))  # fmt: skip
                saving.addErrback(lambda f: log.failure("after a save", f))
                return
            try:
                self.storage.save(to_save, rd.entries)
            except StorageFailure as e:
                self.fail(e)
                return
            self._saved(None, rd, hs, start)
        self.health.update_metrics()

    def _install(self, rd: Ready) -> bool:
        """Persist and restore the leader's snapshot a Ready carries."""
        assert rd.snapshot is not None
        try:
            self.snapshots.install(rd.snapshot, rd.snapshot_data)
        except StorageFailure as e:
            self.fail(e)
            return False
        return True

    def _send_early(self, rd: Ready, hs: HardState, saved: HardState) -> bool:
        """A leader whose term and vote are already durable sends its
        AppendEntries and heartbeats while its own entries are being saved
        (thesis §10.2.1)."""
        if self.core.role is not Role.LEADER or (hs.term, hs.vote) != (saved.term, saved.vote):
            return False
        for message in coalesce(rd.messages):
            if isinstance(message, _EARLY):
                self.transport.send(message)
        return True

    def _saved(
        self, _: object, rd: Ready, hs: HardState, start: float, early: bool = False
    ) -> None:
        self.gate.saving = False
        self._saving = None
        self._saved_hs = hs
        if self.metrics is not None:
            self.metrics.fsync_latency.observe(max(0.0, self.clock.seconds() - start))
        if self.condition.failed:
            return
        self._finish(rd, early)
        self.gate.release()
        if self.in_thread is not None:
            self._process()

    def _save_failed(self, failure: Failure) -> None:
        self.gate.saving = False
        self._saving = None
        self.gate.drop()
        if failure.check(StorageFailure):
            self.fail(failure.value)  # type: ignore[arg-type]
        else:
            self.fail(StorageFailure(f"save failed: {failure.getErrorMessage()}"))

    def _finish(self, rd: Ready, early: bool = False) -> None:
        """Send, apply and advance: the Ready's entries and hard state are durable."""
        if rd.recovered:
            self._end_recovery()
        for message in coalesce(rd.messages):
            if early and isinstance(message, _EARLY):
                continue  # sent before the save
            if isinstance(message, InstallSnapshot):
                self.snapshots.send(message)
            else:
                self.transport.send(message)
        answers = self.applier.apply(rd.committed_entries, self.core.role is Role.LEADER)
        self.core.advance(rd)
        self.members.refresh()
        self.members.applied(self.applied_index)
        self.snapshots.maybe_take()
        self.reads.serve(rd.read_states)
        if rd.committed_entries:
            self.reads.applied_to(self.applied_index)
        for client_id, seq, result in answers:
            self.proposals.answer(client_id, seq, result)
        leader_changed, self._leader_changed = self._leader_changed, False
        self.proposals.after_advance(leader_changed)
        if leader_changed:
            self.reads.reissue(everything=True)

    def _begin_recovery(self, reason: str) -> bool:
        try:
            begin_recovery(self.storage, self.condition, reason)
        except StorageFailure as e:
            self.fail(e)
            return False
        return True

    def _end_recovery(self) -> None:
        try:
            end_recovery(self.storage, self.condition)
        except StorageFailure as e:
            self.fail(e)

    def fail(self, error: StorageFailure) -> None:
        """Fail-stop: after a failed write or sync nothing may be acknowledged."""
        if self.condition.failed:
            return
        self.condition.failed = str(error)
        log.critical("raft storage failed, stopping this node: {error}", error=str(error))
        self._halt("this node's storage failed")
        if self.fail_stop is not None:
            self.fail_stop(str(error))

    @property
    def failed(self) -> bool:
        return self.condition.failed is not None

    @property
    def removed(self) -> int | None:
        return self.condition.removed

    def mark_removed(self, index: int) -> None:
        """This node is no longer a member (since the configuration at ``index``)."""
        if self.condition.removed is not None or self.condition.failed:
            return
        self.condition.removed = index
        log.warn(
            "this node was removed from the cluster at index {index}; stop it, or wipe "
            "its data dir and start it with --join to come back", index=index,
        )  # fmt: skip
        self.members.applied(self.applied_index)  # e.g. its own removal: that succeeded
        self._halt(self.condition.refusal() or "removed")
        self.health.update_metrics()

    # --- requests (what a store built on this node calls) ---------------------

    def propose(self, command: bytes) -> Deferred[Any]:
        """Replicate ``command``; fire with the machine's result once it is
        applied here.  Errbacks `Unavailable`, `CommitTimeout` or
        `ProposalTooLarge`."""
        refusal = self.condition.refusal()
        if refusal is not None:
            return fail(Unavailable(refusal))
        return self.proposals.propose(command)

    def read_barrier(self) -> Deferred[None]:
        """Fire once this node has applied every write committed before the call."""
        refusal = self.condition.refusal()
        if refusal is not None:
            return fail(Unavailable(refusal))
        return self.reads.barrier()

    def change_member(self, op: str, member_id: str, address: str | None) -> Deferred[Addresses]:
        """Add (``add``: as a learner; ``replica``: as a read replica) or remove a
        member; fires with every member's address once applied here (`Members`)."""
        return self.members.change(op, member_id, address)

    def is_leader(self) -> bool:
        return not self.condition.failed and self.core.role is Role.LEADER

    def is_ready(self) -> bool:
        return self.health.is_ready()

    def status(self) -> dict[str, Any]:
        return self.health.status()

