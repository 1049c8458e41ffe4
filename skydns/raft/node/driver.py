"""The Raft node: the pure core joined to a clock, a disk, a network and the
registry.  It implements `skydns.cluster.ICluster`.

The Ready loop (see ``skydns.raft.core.raft``) runs once per reactor turn in
which anything happened, so every proposal and message that arrived in that
turn shares one ``save`` and one fsync (group commit): persist, then send,
then apply, then ``advance``.  A commit-index-only change is not synced on
its own: the commit index is volatile in Raft (Figure 2) and is written
with the next batch of entries.

Proposals and reads waiting for an answer are kept by
`skydns.raft.node.proposals`: the leader appends its own proposals, a follower
forwards them to the leader and answers once the entry is applied locally
(read-your-writes on this node).  Committed entries are applied to the
registry by `skydns.raft.node.applier`, through the session table, so a proposal
submitted twice is applied once.
What the node observes and reports about itself (role and leader changes,
readiness, status, gauges) is `skydns.raft.node.health`.

With ``save_in_thread`` the save runs off the reactor thread: until it is
done and the Ready advanced, whatever would step the core (messages, ticks,
proposals, reads) waits in an inbox, then joins the next batch.

A node removed from the cluster finds out (``skydns.raft.node.members``) and
stops: it no longer ticks (so never campaigns), drops Raft messages, fails
writes and reads at once, is never ready, and reports the role ``removed``;
its registry keeps its last state, which DNS goes on answering from.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from skydns.cluster import ApplyListener, ICluster, NotLeader
from skydns.commands import Command, CommandDecodeError, decode
from skydns.metrics import Metrics
from skydns.raft.core import raft
from skydns.raft.core.messages import (
    AppendEntries,
    Entry,
    HardState,
    Heartbeat,
    InstallSnapshot,
    Message,
)
from skydns.raft.net.interface import (
    BadProposal,
    IRaftHandler,
    IRaftTransport,
    NotLeaderHere,
    ProposalTooLarge,
)
from skydns.raft.node.applier import Applier
from skydns.raft.node.coalesce import coalesce
from skydns.raft.node.envelope import EnvelopeError, unwrap
from skydns.raft.node.health import Health
from skydns.raft.node.members import Connect, Members
from skydns.raft.node.proposals import MAX_COMMAND_BYTES, Requests
from skydns.raft.node.sessions import SessionTable
from skydns.raft.node.snapshots import decode_state
from skydns.raft.node.snapshotter import (
    DEFAULT_KEEP_ENTRIES,
    DEFAULT_SNAPSHOT_ENTRIES,
    STEP_PAUSE,
    Decode,
    InThread,
    Snapshotter,
)
from skydns.raft.storage.disk import IRaftStorage, StorageFailure
from skydns.registry import Applied, Registry

log = Logger()

#: Runs ``storage.save(hard_state, entries)`` off the reactor thread.
SaveInThread = Callable[[HardState | None, Sequence[Entry]], "Deferred[None]"]

#: What a leader may send before its own entries are durable.
_EARLY = (AppendEntries, Heartbeat)

#: How long a proposal or a read may wait before it fails (the API's own
#: timeout is longer, so the client sees our clearer error).
PROPOSAL_TIMEOUT = 8.0


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
        snapshot_entries: int = DEFAULT_SNAPSHOT_ENTRIES,
        keep_entries: int = DEFAULT_KEEP_ENTRIES,
        in_thread: InThread | None = None,
        decode_snapshot: Decode = decode_state,
        encode_in_steps: bool = False,
        joining: bool = False,
        connect: Connect | None = None,
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
        self.requests = Requests(self, f"{self.rng.getrandbits(48):012x}", proposal_timeout)
        self.applier = Applier(registry, self.requests, lambda: self.core.role is raft.Role.LEADER)
        self._pending_call: IDelayedCall | None = None
        self._loop: LoopingCall | None = None
        self._ticks = 0
        self._failed: str | None = None
        self._leader_changed = False
        self.health = Health(self)

        #: The index of the configuration that removed this node, once known.
        self._removed: int | None = None
        self.members = Members(self, connect, joining=joining)
        self.snapshots = Snapshotter(
            self, snapshot_entries, keep_entries, in_thread, decode=decode_snapshot,
            # A snapshot is encoded in steps STEP_PAUSE apart (`Snapshotter`).
            step_later=functools.partial(clock.callLater, STEP_PAUSE) if encode_in_steps else None,
        )  # fmt: skip
        hard_state, stored, entries = storage.load()
        snapshot, entries = self.snapshots.load(stored, entries)
        self.core = raft.RaftCore(
            node_id,
            # A node joining a running cluster starts as no member at all: it
            # learns the configuration from the leader's log or snapshot.
            [] if joining else sorted(peers),
            raft.RestoredState(hard_state, tuple(entries), snapshot, snapshot.index),
            self.rng,
            election_tick=election_tick,
            heartbeat_tick=heartbeat_tick,
            max_size_per_msg=max_size_per_msg,
        )
        self._saved_hs = self._latest_hs = hard_state
        self.applier.applied = snapshot.index
        self.members.refresh()
        self.applier.startup_last = self.core.log.last_index()
        self._process()  # replay the committed log into the registry now
        log.info(
            "raft node {id} loaded term {term}, {count} entries, replayed to {applied}",
            id=node_id, term=hard_state.term, count=len(entries), applied=self.applied_index,
        )  # fmt: skip

    # --- service ------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.transport.start(self)
        if self._removed is not None:
            return  # it keeps answering DNS from its last state, nothing more
        loop = self._loop = LoopingCall(self._tick)
        loop.clock = self.clock
        loop.start(self.tick_interval, now=False).addErrback(
            lambda f: log.failure("raft tick loop failed", f)
        )
        if self.core.config.voters == frozenset({self.id}):
            # A cluster of one needs no election timeout to elect itself.
            self.with_core(lambda: self.core.campaign(prevote=False))

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._halt("this node is shutting down")
        stopping = self.transport.stop()

        async def close() -> None:
            await stopping
            if self._saving is not None:
                # Never two saves at once: wait for the one in the thread.
                await Deferred.fromCoroutine(_quietly(self._saving))
            if self.snapshots.taking is not None:
                # A snapshot being written in a thread uses the storage too.
                await Deferred.fromCoroutine(_quietly(self.snapshots.taking))
            if not self._failed and self._latest_hs != self._saved_hs:
                try:
                    self.storage.save(self._latest_hs, ())
                    self._saved_hs = self._latest_hs
                except StorageFailure as e:
                    log.critical("cannot save the hard state on shutdown: {error}",
                                 error=str(e))  # fmt: skip
            self.storage.close()

        return Deferred.fromCoroutine(close())

    def _halt(self, reason: str) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._pending_call is not None and self._pending_call.active():
            self._pending_call.cancel()
        self._pending_call = None
        self.requests.fail_all(reason)
        self.members.fail_all(reason)

    # --- the Ready loop -----------------------------------------------------

    @property
    def failed(self) -> bool:
        return self._failed is not None

    @property
    def failure(self) -> str | None:
        """Why this node stopped (fail-stop), if it did."""
        return self._failed

    def schedule(self) -> None:
        if self._pending_call is None and not self._failed:
            self._pending_call = self.clock.callLater(0, self._process)

    @property
    def removed(self) -> int | None:
        """The index of the configuration that removed this node, if it was."""
        return self._removed

    def _removed_reason(self) -> str:
        return f"this node was removed from the cluster at index {self._removed}"

    def mark_removed(self, index: int) -> None:
        """This node is no longer a member (since the configuration at ``index``)."""
        if self._removed is not None or self._failed:
            return
        self._removed = index
        log.warn(
            "this node was removed from the cluster at index {index}; stop it, or wipe "
            "its data dir and start it with --join to come back", index=index,
        )  # fmt: skip
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        self.members.applied(self.applied_index)  # e.g. its own removal: that succeeded
        self.requests.fail_all(self._removed_reason())
        self.members.fail_all(self._removed_reason())
        self.health.update_metrics()

    def _tick(self) -> None:
        if self._failed or self._removed is not None:
            return
        self._ticks += 1
        self.with_core(self.core.tick)
        self.with_core(self.members.tick)
        self.requests.expire_overdue()
        if self._ticks % max(1, round(0.5 / self.tick_interval)) == 0:
            self.requests.retry_stale()

    def with_core(self, call: Callable[[], object]) -> None:
        """Run ``call`` (which steps the core) now, or after the save under way."""
        if self._saving is not None:
            self._inbox.append(call)  # type: ignore[arg-type]
            return
        call()
        self.schedule()

    def _process(self) -> None:
        self._pending_call = None
        if self._saving is None and not self._failed:
            self.requests.append_batch()
        while not self._failed and self._saving is None and self.core.has_ready():
            rd = self.core.ready()
            if self.health.observe(rd.soft_state):
                self._leader_changed = True
            if rd.hard_state is not None:
                self._latest_hs = rd.hard_state
            if rd.snapshot is not None and not self._install(rd):
                return
            hs, saved = self._latest_hs, self._saved_hs
            if not rd.entries and (hs.term, hs.vote) == (saved.term, saved.vote):
                self._finish_ready(rd)  # a commit-only change waits for the next save
                continue
            start = self.clock.seconds()
            to_save = hs if hs != saved else None
            if self.save_in_thread is not None:
                early = self._send_early(rd, hs, saved)
                saving = self._saving = self.save_in_thread(to_save, rd.entries)
                saving.addCallbacks(self._saved, self._save_failed,
                                    callbackArgs=(rd, hs, start, early))  # fmt: skip
                saving.addErrback(lambda f: log.failure("after a save", f))
                return
            try:
                self.storage.save(to_save, rd.entries)
            except StorageFailure as e:
                self._fail(e)
                return
            self._saved(None, rd, hs, start)
        self.health.update_metrics()

    def _install(self, rd: raft.Ready) -> bool:
        """Persist and restore the leader's snapshot a Ready carries."""
        assert rd.snapshot is not None
        try:
            self.snapshots.install(rd.snapshot, rd.snapshot_data)
        except StorageFailure as e:
            self._fail(e)
            return False
        self.applier.applied = rd.snapshot.index
        return True

    def _send_early(self, rd: raft.Ready, hs: HardState, saved: HardState) -> bool:
        """A leader whose term and vote are already durable sends its
        AppendEntries and heartbeats while its own entries are being saved
        (thesis §10.2.1): nothing commits before that save is done, because
        the followers' acknowledgements wait in the inbox until then."""
        if self.core.role is not raft.Role.LEADER or (hs.term, hs.vote) != (
            saved.term,
            saved.vote,
        ):
            return False
        for message in coalesce(rd.messages):
            if isinstance(message, _EARLY):
                self.transport.send(message)
        return True

    def _saved(
        self, _: object, rd: raft.Ready, hs: HardState, start: float, early: bool = False
    ) -> None:
        self._saving = None
        self._saved_hs = hs
        if self.metrics is not None:
            self.metrics.fsync_latency.observe(max(0.0, self.clock.seconds() - start))
        if self._failed or (self.save_in_thread is not None and not self.running):
            return
        self._finish_ready(rd, early)
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

    def _finish_ready(self, rd: raft.Ready, early: bool = False) -> None:
        """Send, apply and advance: the Ready's entries and hard state are durable."""
        for message in coalesce(rd.messages):
            if early and isinstance(message, _EARLY):
                continue  # sent before the save
            if isinstance(message, InstallSnapshot):
                self.snapshots.send(message)
            else:
                self.transport.send(message)
        done = self.applier.apply(rd.committed_entries)
        self.core.advance(rd)
        self.members.refresh()
        self.members.applied(self.applied_index)
        self.snapshots.maybe_take()
        self.requests.serve_reads(rd.read_states)
        for fire in done:
            fire()
        leader_changed, self._leader_changed = self._leader_changed, False
        self.requests.after_advance(leader_changed)

    def _fail(self, error: StorageFailure) -> None:
        """Fail-stop: after a failed write or sync nothing may be acknowledged."""
        self._failed = str(error)
        log.critical("raft storage failed, stopping this node: {error}", error=str(error))
        self._halt("this node's storage failed")
        if self.fail_stop is not None:
            self.fail_stop(str(error))

    # --- requests ----------------------------------------------------------

    def propose(self, command: Command) -> Deferred[Applied]:
        if self._failed or not self.running:
            return fail(NotLeader("this node is not running"))
        if self._removed is not None:
            return fail(NotLeader(self._removed_reason()))
        return self.requests.propose(command)

    def read_barrier(self) -> Deferred[None]:
        if self._failed or not self.running:
            return fail(NotLeader("this node is not running"))
        if self._removed is not None:
            return fail(NotLeader(self._removed_reason()))
        return self.requests.read_barrier()

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
        if self._removed is not None:
            raise NotLeaderHere(None)
        if self._failed or not self.running or self.core.role is not raft.Role.LEADER:
            leader = self.core.leader
            raise NotLeaderHere(None if leader == self.id else leader)
        try:
            envelope = unwrap(data)
            decode(envelope.payload)
        except (EnvelopeError, CommandDecodeError) as e:
            raise BadProposal(str(e)) from e
        if len(envelope.payload) > MAX_COMMAND_BYTES:
            raise ProposalTooLarge(len(envelope.payload))
        try:
            index = self.core.propose(data)
        except (raft.NotLeader, raft.ProposalDropped) as e:
            raise NotLeaderHere(None) from e
        self.schedule()
        return index, self.core.term

    def receive(self, message: Message) -> int | None:
        """Step ``message``; if its sender was removed from the cluster, the
        index of the configuration that removed it (the transport tells it)."""
        if self._failed or not self.running or self._removed is not None:
            return None
        config = self.core.config
        member = self.id in config.voters or self.id in config.learners
        if message.dst == self.id and member and message.src not in self.addresses:
            removed = self.members.removed_at(message.src)
            if removed is not None:
                log.info("{src}, removed at index {index}, sent a {kind}: telling it",
                         src=message.src, index=removed,
                         kind=type(message).__name__)  # fmt: skip
                return removed
        if message.dst != self.id or message.src == self.id or (
            member and message.src not in self.addresses
        ):
            log.warn("dropped a {kind} from {src} to {dst}: not for this cluster member",
                     kind=type(message).__name__, src=message.src, dst=message.dst)  # fmt: skip
            return None
        if isinstance(message, InstallSnapshot):
            self.snapshots.receive(message)  # steps the core once it is whole
            return None
        self.with_core(functools.partial(self.step_message, message))
        return None

    def removed_notice(self, src: str, dst: str, index: int) -> None:
        """Member ``src`` says this node was removed at ``index``."""
        if dst != self.id or src == self.id or src not in self.addresses:
            log.warn("ignored a removal notice from {src} to {dst}", src=src, dst=dst)
            return
        if self._removed is None and not self._failed:
            log.info("{src} says this node was removed at index {index}", src=src, index=index)
            self.mark_removed(index)

    def change_member(
        self, op: str, member_id: str, address: str | None
    ) -> Deferred[dict[str, str | None]]:
        """Add (as a learner) or remove a member; fires with every member's
        address once committed and applied here (`skydns.raft.node.members`)."""
        return self.members.change(op, member_id, address)

    def add_member(self, member_id: str, address: str) -> Deferred[dict[str, str | None]]:
        return self.members.change("add", member_id, address)

    def remove_member(self, member_id: str) -> Deferred[dict[str, str | None]]:
        return self.members.change("remove", member_id, None)

    def fail(self, error: StorageFailure) -> None:
        self._fail(error)

    def step_message(self, message: Message) -> None:
        try:
            self.core.step(message)
        except Exception:
            log.failure("the Raft core refused a {kind} from {src}",
                        kind=type(message).__name__, src=message.src)  # fmt: skip
        else:
            self.health.heard(message)

    # --- ICluster -----------------------------------------------------------

    def is_leader(self) -> bool:
        return not self._failed and self.core.role is raft.Role.LEADER

    def is_ready(self) -> bool:
        return self.health.is_ready()

    def add_apply_listener(self, listener: ApplyListener) -> None:
        self.applier.listeners.append(listener)

    @property
    def applied_index(self) -> int:
        return self.applier.applied

    @property
    def sessions(self) -> SessionTable[Applied]:
        """The session table applied commands go through (`Applier.sessions`)."""
        return self.applier.sessions

    @sessions.setter
    def sessions(self, table: SessionTable[Applied]) -> None:
        self.applier.sessions = table  # a snapshot restores it

    def status(self) -> dict[str, Any]:
        return self.health.status()


async def _quietly(d: Deferred[None]) -> None:
    try:
        await d
    except Exception:
        pass  # already handled (fail-stop) by the save's own errback


__all__ = ["RaftNode"]
