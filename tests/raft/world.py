"""A deterministic, seeded simulation of a cluster of real Raft nodes.

Each host runs the production `RaftNode` and `DiskStorage` (the WAL, the
hard state and snapshot files, recovery) over a simulated disk
(`tests.raft.simdisk`), a simulated network (`tests.raft.simnet`) and one
event queue (`tests.raft.simclock`), all driven from one
``random.Random(seed)``: the same seed replays the same run.  The node's
saves, snapshot writes and decoding run "in a thread" that takes
``fsync_delay``; a crash can land at any event, including inside a sync.

Faults: crashes (losing, tearing or keeping what was not synced) and
restarts; stalls (a CPU-starved process runs nothing for a while, then its
timers before the messages that arrived); lost synced data (a zeroed WAL
tail); and everything the network does (`NetConfig`, partitions).  After
every event the `Invariants` are checked; a violation raises
`SafetyViolation` naming the seed and the time.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any, Callable

import attrs
from attrs import define, field
from twisted.internet.defer import Deferred, fail
from twisted.logger import globalLogPublisher

from skydns.raft.core.messages import Entry, HardState
from skydns.raft.core.ready import Role
from skydns.raft.node.driver import RaftNode
from skydns.raft.node.join import join
from skydns.raft.node.options import NodeOptions
from skydns.raft.storage import wal
from skydns.raft.storage.disk import DiskStorage
from skydns.raft.storage.errors import StorageError
from skydns.raft.storage.replay import list_segments
from tests.raft.invariants import Invariants, SafetyViolation
from tests.raft.kv import KVMachine
from tests.raft.simclock import HostClock, SimClock
from tests.raft.simdisk import SimCrash, SimDisk
from tests.raft.simnet import NetConfig, SimNetwork, SimTransport

DATA = "data"
#: A run whose nodes handle this many events within LIVELOCK_SPAN simulated
#: seconds is spinning (real runs stay under a few thousand per second).
LIVELOCK_EVENTS = 100_000
LIVELOCK_SPAN = 0.5

#: The node's timing in the simulation: ticks of 10 ms, elections after
#: 100-200 ms, a heartbeat every tick; everything else scaled alike.
SIM_OPTIONS = NodeOptions(
    tick_interval=0.01,
    election_tick=10,
    heartbeat_tick=1,
    proposal_timeout=1.0,
    retry_interval=0.3,
    retry_delay=0.02,
    max_size_per_msg=1024,
    max_inflight=8,
    snapshot_entries=1_000_000,
    keep_entries=5,
)


@define
class WorldConfig:
    #: Hosts in the initial configuration; the others start empty and join.
    members: int = 3
    hosts: int = 3
    options: NodeOptions = SIM_OPTIONS
    net: NetConfig = field(factory=NetConfig)
    #: Seconds a save (or another thread's work) takes.
    fsync_delay: float = 0.001
    #: Chance that a crash keeps some of what was not synced (torn or whole).
    keep_pending: float = 0.5
    #: Chance that a save is interrupted by a crash inside its sync.
    crash_in_sync: float = 0.0
    #: Whether a crash breaks the peers' connections (`peer_unreachable`).
    notify_deaths: bool = True
    #: Up to how long a reactor turn takes: the messages arriving meanwhile
    #: are handled before the node's Ready loop runs.
    turn: float = 0.0005
    #: Makes each host's state machine (the key-value store; the lease
    #: scenarios run the registry).
    machine: Callable[[], Any] = KVMachine


@define(eq=False)
class Host:
    id: str
    world: World
    disk: SimDisk = field(factory=SimDisk)
    clock: HostClock = field(default=None)  # type: ignore[assignment]
    node: RaftNode | None = None
    machine: Any = None
    incarnation: int = 0
    started: bool = False
    #: This host's sync time, if not the world's ``fsync_delay``.
    fsync_delay: float | None = None
    #: The running node's connections (the network notes who called it).
    transport: SimTransport | None = None
    #: Set for a node that joins a running cluster (it starts as no member).
    joining: bool = False
    #: How far this host's wall clock is off the world's (clock jumps).
    offset: float = 0.0

    @property
    def up(self) -> bool:
        return self.node is not None

    @property
    def handler(self) -> RaftNode:
        assert self.node is not None, f"{self.id} is down"
        return self.node


class World:
    #: The world being run, to which the log observer reports exceptions.
    current: World | None = None

    def __init__(self, seed: int, config: WorldConfig | None = None) -> None:
        World.current = self
        #: Exceptions the nodes logged (none is expected: each is a failure).
        self.exceptions: list[str] = []
        self._mark = (0, 0.0)
        self.seed = seed
        self.config = config = config or WorldConfig()
        self.rng = random.Random(seed)
        self.clock = SimClock()
        self.faults: Counter[str] = Counter()
        self.ids = [f"n{i}" for i in range(1, config.hosts + 1)]
        self.members = self.ids[: config.members]
        self.network = SimNetwork(self.rng, config.net, self.faults)
        self.invariants = Invariants(self)
        self.network.observers.append(self.invariants.sent)
        #: Called with each host whose node has just started (the
        #: application's services on top of it).
        self.started_hooks: list[Callable[[Host], None]] = []
        self.hosts = {i: Host(i, self) for i in self.ids}
        self.network.hosts = self.hosts
        for host in self.hosts.values():
            host.joining = host.id not in self.members
            if not host.joining:
                self.start(host.id)

    # --- running ----------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.clock.now

    def run_until(self, until: float, stop: Callable[[], bool] | None = None) -> bool:
        """Run events up to time ``until``; True as soon as ``stop()`` holds."""
        while True:
            when = self.clock.next_time()
            if when is None or when > until:
                break
            self._watch_for_livelock()
            try:
                self.clock.step()
            except SimCrash:
                raise AssertionError("a crash escaped its host") from None
            try:
                if self.exceptions:
                    raise SafetyViolation(f"a node logged an exception: {self.exceptions[0]}")
                self.invariants.check()
            except SafetyViolation as e:
                raise SafetyViolation(f"seed {self.seed}, t={self.now:.4f}: {e}") from None
            if stop is not None and stop():
                return True
        self.clock.now = max(self.clock.now, until)
        return False

    def _watch_for_livelock(self) -> None:
        """Fail a run whose nodes exchange messages at wire speed without
        time moving on (a real cluster would burn CPU and network forever)."""
        if self.clock.events - self._mark[0] < LIVELOCK_EVENTS:
            return
        if self.now - self._mark[1] < LIVELOCK_SPAN:
            raise SafetyViolation(
                f"seed {self.seed}, t={self.now:.4f}: livelock: {LIVELOCK_EVENTS} events within "
                f"{self.now - self._mark[1]:.3f} simulated seconds")  # fmt: skip
        self._mark = (self.clock.events, self.now)

    def run_for(self, seconds: float, stop: Callable[[], bool] | None = None) -> bool:
        return self.run_until(self.now + seconds, stop)

    # --- hosts ------------------------------------------------------------------

    def start(self, host_id: str) -> None:
        host = self.hosts[host_id]
        if host.up:
            return
        host.incarnation += 1
        host.clock = HostClock(self.clock, host.offset)
        machine = self.config.machine()
        self.invariants.watch(host, machine)
        storage = ObservedStorage(DiskStorage(DATA, files=host.disk), self.invariants, host)
        peers = {i: f"{i}:7000" for i in (self.members if not host.joining else [host_id])}
        if host.joining and host.started:
            peers = {host_id: f"{host_id}:7000"}
        options = attrs.evolve(self.config.options, joining=host.joining)
        try:
            node = RaftNode(
                host_id, peers, storage, SimTransport(self.network, host_id, peers), machine,
                host.clock,
                options=options, rng=random.Random(self.rng.random()),
                fail_stop=lambda reason, h=host: self._failed(h, reason),
                in_thread=lambda f, *a, h=host: self._thread(h, f, *a),
                step_later=lambda f, h=host: h.clock.callLater(0.001, f),
                # A reactor turn handles every message ready at once, then runs
                # the Ready loop: what arrives within the turn is batched.
                schedule=lambda f, h=host: h.clock.callLater(self._turn(), f),
            )  # fmt: skip
        except SimCrash:
            self.faults["crash while starting"] += 1
            self._lose(host)
            return
        except StorageError as e:
            raise AssertionError(f"{host_id} cannot start: {e}") from e
        host.node, host.machine = node, machine
        node.startService()
        host.started = True
        for hook in self.started_hooks:
            hook(host)
        if host.joining and not node.members.is_member():
            self._join(host)

    def _join(self, host: Host) -> None:
        """What ``--join`` does (`skydns.raft.node.join`): ask a member to
        add this host until its configuration has it."""
        node = host.handler

        def ask(node_id: str, address: str) -> Deferred[Any]:
            contact = self.rng.choice(sorted(self.configuration()))
            return self.network.call(host.id, contact,
                                     lambda h: h.change_member("add", node_id, address))

        joining = Deferred.fromCoroutine(join(host.clock, ask, node.members, node.condition,
                                              f"{host.id}:7000", retry=0.3, confirm_within=1.0))
        joining.addErrback(lambda f: None)

    def _turn(self) -> float:
        """How long until the next reactor turn: drawn up to ``config.turn``."""
        return self.rng.uniform(0, self.config.turn)

    def _thread(self, host: Host, call: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """``call`` run "in a thread" that takes ``fsync_delay``."""
        done: Deferred[Any] = Deferred()
        incarnation = host.incarnation

        def run() -> None:
            if host.incarnation != incarnation or not host.up:
                return
            if self.config.crash_in_sync and self.rng.random() < self.config.crash_in_sync:
                host.disk.crash_at_sync = True
            try:
                try:
                    result = call(*args)
                finally:
                    host.disk.crash_at_sync = False  # only inside this call
            except SimCrash:
                self.faults["crash inside a sync"] += 1
                self.crash(host.id)
                self.clock.callLater(self.rng.uniform(0.02, 0.3), self.restart, host.id)
                return
            except Exception:
                done.errback()
                return
            if isinstance(result, Deferred):
                result.chainDeferred(done)
            else:
                done.callback(result)

        delay = self.config.fsync_delay if host.fsync_delay is None else host.fsync_delay
        host.clock.callLater(delay, run)
        return done

    def _failed(self, host: Host, reason: str) -> None:
        """The node stopped itself (a failed write or sync): the process exits."""
        self.faults["fail-stop"] += 1
        self.crash(host.id)
        self.clock.callLater(self.rng.uniform(0.02, 0.3), self.restart, host.id)

    def crash(self, host_id: str, keep_pending: float | None = None) -> None:
        """kill -9 with power loss: the process goes, and the disk keeps what
        a crash keeps (`SimDisk.crash`)."""
        host = self.hosts[host_id]
        if not host.up:
            return
        self.faults["crash"] += 1
        node = host.node
        host.node = None
        host.clock.kill()
        assert node is not None
        node.condition.running = False
        self._lose(host, keep_pending)
        if self.config.notify_deaths:
            self.network.died(host_id)

    def _lose(self, host: Host, keep_pending: float | None = None) -> None:
        host.node = None
        host.clock.kill()
        keep = self.config.keep_pending if keep_pending is None else keep_pending
        if host.disk.crash(self.rng, keep):
            self.faults["unsynced writes lost or torn"] += 1
        self.invariants.crashed(host)

    def wipe(self, host_id: str) -> None:
        """Stop ``host_id`` and empty its data dir: it may only join anew."""
        host = self.hosts[host_id]
        if host.up:
            self.crash(host_id)
        self.faults["wipe"] += 1
        self.invariants.wiped(host)
        host.disk = SimDisk()
        host.started = False
        host.joining = True

    def restart(self, host_id: str) -> None:
        if not self.hosts[host_id].up:
            self.faults["restart"] += 1
            self.start(host_id)

    def stall(self, host_id: str, seconds: float) -> None:
        """The host's process gets no CPU for ``seconds``."""
        host = self.hosts[host_id]
        if host.up:
            self.faults["stall"] += 1
            host.clock.stalled_until = max(host.clock.stalled_until, self.now + seconds)

    def lose_synced_wal_tail(self, host_id: str, detectable: bool = False) -> bool:
        """A disk that lost writes it had acknowledged: zero the WAL from
        inside a synced frame that is not the last to the end (the node must
        be down).  False if its WAL has too few frames.  With
        ``detectable``, the loss starts before the last write, so that it
        cannot pass for that write torn by a crash."""
        host = self.hosts[host_id]
        assert not host.up
        segments = list_segments(host.disk, f"{DATA}/wal")
        if not segments:
            return False
        path = segments[-1][2]
        data = host.disk.read(path)
        contents = wal.read_segment(path, data, segments[-1][0], True)
        frames = contents.frames[1:-1]  # not the segment's base, nor the last
        if detectable:
            frames = [f for f in frames if f.end <= host.disk.names[path].last_write]
        if not frames:
            return False
        frame = self.rng.choice(frames)
        first, last = frame.offset + wal.FRAME_HEADER_SIZE, frame.end - 1
        if detectable:
            # Zeroing bytes that are zero already changes nothing: the damage
            # must begin in this frame, whose intact header says how long it is.
            while last >= first and data[last] == 0:
                last -= 1
            if last < first:
                return False
        start = self.rng.randint(first, last)
        if host.disk.lose_synced_tail(path, start):
            self.faults["synced frames lost"] += 1
            self.invariants.lost_data(host)
            return True
        return False

    # --- the network ------------------------------------------------------------

    def partition(self, *groups: Sequence[str]) -> None:
        """Only hosts in the same group hear each other."""
        self.faults["partition"] += 1
        self.network.blocked = {
            (a, b) for a in self.ids for b in self.ids
            if a != b and not any(a in g and b in g for g in groups)
        }  # fmt: skip

    def isolate(self, host_id: str) -> None:
        self.partition([host_id], [i for i in self.ids if i != host_id])

    def cut(self, src: str, dst: str) -> None:
        self.faults["one-way cut"] += 1
        self.network.blocked.add((src, dst))

    def heal(self) -> None:
        self.network.blocked = set()

    # --- observation --------------------------------------------------------------

    def up(self) -> list[Host]:
        return [h for h in self.hosts.values() if h.up]

    def leader(self) -> str | None:
        """The leader with the highest term, if any."""
        best: tuple[int, str] | None = None
        for host in self.up():
            core = host.handler.core
            if core.role is Role.LEADER and (best is None or core.term > best[0]):
                best = (core.term, host.id)
        return None if best is None else best[1]

    def node(self, host_id: str) -> RaftNode:
        return self.hosts[host_id].handler

    def configuration(self) -> frozenset[str]:
        """The members of the leader's configuration (or the initial ones)."""
        leader = self.leader()
        if leader is None:
            return frozenset(self.members)
        config = self.node(leader).core.config
        return config.voters | config.learners

    def converged(self) -> bool:
        """One leader; every member up, with the same log, all of it applied."""
        leader = self.leader()
        if leader is None:
            return False
        lead = self.node(leader).core
        last = lead.log.last_index()
        if lead.log.committed != last:
            return False
        for member in lead.config.voters | lead.config.learners:
            host = self.hosts[member]
            if not host.up:
                return False
            node = host.handler
            if node.core.log.last_index() != last or node.applied_index != last:
                return False
            if node.condition.recovering is not None:
                return False
        return True

    def settle(self, within: float = 10.0) -> None:
        """Calm the network and the disks, restart everyone, and run until
        converged."""
        self.heal()
        self.config.crash_in_sync = 0.0
        net = self.network.config
        net.drop = net.duplicate = net.reorder = net.long_delay = 0.0
        for host in self.hosts.values():
            if host.up:
                host.clock.stalled_until = 0.0
            if host.started or not host.joining:
                self.restart(host.id)
        if not self.run_for(within, self.converged):
            raise AssertionError(f"seed {self.seed}: no convergence within {within}s: "
                                 f"{self.statuses()}")  # fmt: skip

    def statuses(self) -> list[str]:
        """One line per host, for failure messages."""
        lines = []
        for host in self.hosts.values():
            if not host.up:
                lines.append(f"{host.id} down")
                continue
            node = host.handler
            core = node.core
            lines.append(
                f"{host.id} {core.role.value} t{core.term} lead={core.leader} "
                f"commit={core.log.committed} last={core.log.last_index()} "
                f"applied={node.applied_index} snap={core.log.snapshot.index} "
                f"voters={sorted(core.config.voters)} learners={sorted(core.config.learners)}"
                + (" RECOVERING" if node.condition.recovering else "")
                + (f" removed@{node.condition.removed}" if node.condition.removed else "")
            )
        return lines


class ObservedStorage:
    """A host's `DiskStorage`, and the invariants told of every durable save."""

    def __init__(self, storage: DiskStorage, invariants: Invariants, host: Host) -> None:
        self.storage = storage
        self.invariants = invariants
        self.host = host

    def save(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        node = self.host.node
        if node is not None and entries:
            self.invariants.saving(self.host.id, node.core, entries)
        self.storage.save(hard_state, entries)
        if hard_state is not None:
            self.invariants.durable_vote(self.host.id, hard_state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)


def refused(error: Exception) -> Deferred[Any]:
    return fail(error)


def _observe(event: dict[str, Any]) -> None:
    """Report every exception a node logs to the world being run."""
    world = World.current
    if world is not None and "log_failure" in event:
        if str(event.get("log_namespace", "")).startswith("skydns"):
            failure = event["log_failure"]
            world.exceptions.append(f"{event.get('log_format')}: {failure.getErrorMessage()}")


globalLogPublisher.addObserver(_observe)
