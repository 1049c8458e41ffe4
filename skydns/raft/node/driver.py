"""The Raft node: the pure core driven against a clock, a disk, a network and
a state machine, all given to it (`RaftNode`).

The Ready loop runs once per reactor turn in which anything happened, so
every proposal and message of that turn shares one save (group commit):

1. persist the Ready's snapshot, hard state and entries, off the reactor
   thread when ``in_thread`` is given; until that save is done and the
   Ready advanced, whatever would step the core waits in the `CoreGate`;
2. send its messages.  Only a leader's AppendEntries and heartbeats may go
   before its own save is durable (thesis §10.2.1: the followers' answers
   wait in the gate, so nothing commits before the leader's copy is
   durable); a vote, an acknowledgement or anything of a new term or vote
   waits for the save (Raft Figure 2);
3. apply the committed entries (`Applier`), answer the proposals and reads
   they complete, and ``advance``.

A commit-index-only change is not saved on its own: the commit index is
volatile in Raft and is written with the next batch.  The parts: proposals
(`Proposals`), linearizable reads (`Reads`), membership (`Members`),
snapshots (`Snapshotter`), what the node reports (`Health`) and why it may
not serve (`Condition`); each gets the few collaborators it uses.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Callable

import attrs
from attrs import frozen
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from skydns.raft.core.messages import (
    AppendEntries,
    HardState,
    Heartbeat,
    InstallSnapshot,
    Message,
)
from skydns.raft.core.raft import RaftCore
from skydns.raft.core.ready import NotLeader, ProposalDropped, Ready, RestoredState, Role
from skydns.raft.net.interface import (
    BadProposal,
    IRaftHandler,
    IRaftTransport,
    NotLeaderHere,
    ProposalTooLarge,
)
from skydns.raft.node.applier import Applier
from skydns.raft.node.coalesce import coalesce
from skydns.raft.node.condition import Condition
from skydns.raft.node.envelope import EnvelopeError, unwrap
from skydns.raft.node.errors import Unavailable
from skydns.raft.node.gate import CoreGate
from skydns.raft.node.health import Health, RaftMetrics
from skydns.raft.node.machine import InvalidCommand, IStateMachine
from skydns.raft.node.members import Addresses, Members
from skydns.raft.node.proposals import MAX_COMMAND_BYTES, Proposals
from skydns.raft.node.reads import Reads
from skydns.raft.node.snapshotter import (
    DEFAULT_KEEP_ENTRIES,
    DEFAULT_SNAPSHOT_ENTRIES,
    InThread,
    Snapshotter,
    StepLater,
    load_snapshot,
)
from skydns.raft.storage.errors import StorageError, StorageFailure
from skydns.raft.storage.interface import IRaftStorage, Loaded

log = Logger()

#: What a leader may send before its own entries are durable.
_EARLY = (AppendEntries, Heartbeat)
#: What only a leader sends.
_LEADERS = (AppendEntries, Heartbeat, InstallSnapshot)


@frozen
class NodeOptions:
    """How a node keeps time and sizes its work."""

    #: Seconds per core tick.
    tick_interval: float = 0.01
    #: Ticks without a leader before an election (randomized up to twice that).
    election_tick: int = 50
    #: Ticks between a leader's heartbeats.
    heartbeat_tick: int = 5
    #: Seconds a proposal or read may wait before it fails (the API's own
    #: timeout is longer, so the client sees this clearer error).
    proposal_timeout: float = 8.0
    #: A proposal not applied this long after it was submitted is submitted
    #: again (as is a read that got no read index).
    retry_interval: float = 2.0
    #: Pause before resubmitting after a failed forward.
    retry_delay: float = 0.05
    max_size_per_msg: int = 60_000
    #: AppendEntries a leader keeps unacknowledged per follower.
    max_inflight: int = 64
    #: PreVote (thesis §9.6) and CheckQuorum (thesis §6.2).
    pre_vote: bool = True
    check_quorum: bool = True
    snapshot_entries: int = DEFAULT_SNAPSHOT_ENTRIES
    keep_entries: int = DEFAULT_KEEP_ENTRIES
    #: A node started with ``--join``: no member until the leader adds it.
    joining: bool = False


DEFAULT_OPTIONS = NodeOptions()


@implementer(IRaftHandler)
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
        self._wake_pending = False
        #: The save under way in a thread, if any.
        self._saving: Deferred[None] | None = None
        self._loop: LoopingCall | None = None
        self._ticks = 0
        self._leader_changed = False
        self._saved_hs = self._latest_hs = HardState()

        loaded = storage.load()
        if options.joining and loaded.recovering is None and _empty(loaded):
            # A joiner's log lacks everything the cluster committed; an old
            # snapshot it is sent may even list a former member of its name
            # as a voter.  It neither votes nor campaigns until a leader has
            # brought it up to date, restarts included.
            reason = "joining: the log is empty until the leader fills it"
            storage.begin_recovery(reason)
            loaded = attrs.evolve(loaded, recovering=reason)
        self.condition.recovering = loaded.recovering
        snapshot, entries, stored = load_snapshot(storage, machine, loaded.snapshot, loaded.entries)
        core = RaftCore(
            node_id,
            # A node joining a running cluster starts as no member at all: it
            # learns the configuration from the leader's log or snapshot.
            [] if options.joining else sorted(peers),
            RestoredState(loaded.hard_state, tuple(entries), snapshot, snapshot.index,
                          recovering=loaded.recovering is not None),  # fmt: skip
            self.rng,
            election_tick=options.election_tick,
            heartbeat_tick=options.heartbeat_tick,
            max_size_per_msg=options.max_size_per_msg,
            max_inflight=options.max_inflight,
            pre_vote=options.pre_vote,
            check_quorum=options.check_quorum,
        )
        if loaded.recovering is not None and core.config.voters == {node_id}:
            storage.close()
            raise StorageError(
                f"{loaded.recovering}; this node is the only voter, so no leader can restore "
                "the entries its log lost: restore its data dir from a backup, or move the "
                "data dir away to start empty"
            )
        self._saved_hs = self._latest_hs = loaded.hard_state
        self.gate = CoreGate(core, self.wake)
        self.applier = Applier(machine, applied=snapshot.index, startup_last=core.log.last_index())
        addresses: Addresses = dict(peers)
        self.members = Members(self.gate, transport, addresses, self.condition,
                               self.mark_removed, joining=options.joining,
                               leader_commit=lambda: self.health.leader_commit[1])  # fmt: skip
        self.snapshots = Snapshotter(
            storage, machine, self.applier, self.members, self.gate, transport.send,
            self._deliver_snapshot, clock, self.condition, self.fail, self.rng,
            options.snapshot_entries, options.keep_entries, in_thread, step_later,
        )  # fmt: skip
        if stored is not None:
            self.snapshots.restore_stored(*stored)
        incarnation = f"{self.rng.getrandbits(48):012x}"
        self.proposals = Proposals(
            f"{node_id}.{incarnation}", self.gate, transport.forward, clock,
            self._applied, self.condition, options.proposal_timeout,
            options.retry_interval, options.retry_delay,
        )  # fmt: skip
        self.reads = Reads(f"{node_id}/{incarnation}", self.gate, clock, self._applied,
                           options.proposal_timeout, options.retry_interval)  # fmt: skip
        self.health = Health(self.gate, addresses, self.condition, self._applied, metrics)
        self.members.refresh()
        self._process()  # replay the committed log into the state machine now
        log.info(
            "raft node {id} loaded term {term}, {count} entries, replayed to {applied}",
            id=node_id, term=loaded.hard_state.term, count=len(entries),
            applied=self.applied_index,
        )  # fmt: skip
        if loaded.recovering is not None:
            log.warn("this node does not vote until a leader has brought its log up to date "
                     "({reason})", reason=loaded.recovering)  # fmt: skip

    @property
    def core(self) -> RaftCore:
        return self.gate.core

    @property
    def addresses(self) -> Addresses:
        return self.members.addresses

    def _applied(self) -> int:
        return self.applier.applied

    @property
    def applied_index(self) -> int:
        return self.applier.applied

    # --- service ------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.condition.running = True
        self.transport.start(self)
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

        async def close() -> None:
            await stopping
            for busy in (self._saving, self.snapshots.taking):
                if busy is not None:
                    # Never two saves at once, nor a snapshot write after close.
                    await Deferred.fromCoroutine(_quietly(busy))
            if not self.condition.failed and self._latest_hs != self._saved_hs:
                try:
                    self.storage.save(self._latest_hs, ())
                    self._saved_hs = self._latest_hs
                except StorageFailure as e:
                    log.critical("cannot save the hard state on shutdown: {error}", error=str(e))
            self.storage.close()

        return Deferred.fromCoroutine(close())

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
            self.storage.begin_recovery(reason)
        except StorageFailure as e:
            self.fail(e)
            return False
        log.error("this node's log lost entries it acknowledged ({reason}); it will not vote "
                  "until the leader has restored it", reason=reason)  # fmt: skip
        self.condition.recovering = reason
        return True

    def _end_recovery(self) -> None:
        try:
            self.storage.end_recovery()
        except StorageFailure as e:
            self.fail(e)
            return
        log.info("a leader has brought this node's log up to date: it votes from now on")
        self.condition.recovering = None

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
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        self.members.applied(self.applied_index)  # e.g. its own removal: that succeeded
        reason = self.condition.refusal() or "removed"
        self.proposals.fail_all(reason)
        self.reads.fail_all(reason)
        self.members.fail_all(reason)
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
        """Add (as a learner) or remove a member; fires with every member's
        address once committed and applied here (`Members`)."""
        return self.members.change(op, member_id, address)

    def is_leader(self) -> bool:
        return not self.condition.failed and self.core.role is Role.LEADER

    def is_ready(self) -> bool:
        return self.health.is_ready()

    def status(self) -> dict[str, Any]:
        return self.health.status()

    # --- what the transport delivers (IRaftHandler) ---------------------------

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
        config = self.core.config
        member = self.id in config.voters or self.id in config.learners
        if (
            message.dst == self.id and member and message.src not in self.addresses
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
        if message.dst != self.id or message.src == self.id or (
            member and message.src not in self.addresses and not isinstance(message, _LEADERS)
        ):
            # A sender missing from the configuration this node holds may
            # still be its leader (that configuration can be an entry the
            # leader's log replaces, or lag behind one that added the
            # sender, thesis §4.2.3); anything else from it is dropped.
            log.warn("dropped a {kind} from {src} to {dst}: not for this cluster member",
                     kind=type(message).__name__, src=message.src, dst=message.dst)  # fmt: skip
            return None
        if message.src not in self.addresses and isinstance(message, _LEADERS):
            self.members.answer(message.src)
        if isinstance(message, InstallSnapshot):
            self.snapshots.receive(message)  # steps the core once it is whole
            return None
        self.gate.run(lambda core: self._step(core, message))
        return None

    def _deliver_snapshot(self, message: InstallSnapshot) -> None:
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
        if dst != self.id or src == self.id or src not in self.addresses:
            log.warn("ignored a removal notice from {src} to {dst}", src=src, dst=dst)
            return
        core = self.core
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


def _empty(loaded: Loaded) -> bool:
    return not loaded.entries and loaded.snapshot is None and loaded.hard_state == HardState()


async def _quietly(d: Deferred[Any]) -> None:
    try:
        await d
    except Exception:
        pass  # already handled (fail-stop) by its own errback


__all__ = ["NodeOptions", "RaftNode"]
