"""A deterministic, seeded simulation of a Raft cluster under faults.

Everything runs on one fake clock (integer time units) from one
``random.Random(seed)``: the same seed replays the same run.  The world:

- **Network**: every message takes ``delay_min..delay_max`` units,
  sometimes much longer (``long_delay``); links are FIFO (like the TCP
  connections AMP runs on) except that a message may overtake
  (``reorder``); it may be dropped (``drop``) or delivered twice
  (``duplicate``).  Partitions block directed links, so cuts may be
  one-way; a blocked message is lost.
- **Disks**: each node's writes (hard state, entries) reach its simulated
  disk at once but are only durable after an fsync taking ``fsync_delay``
  units.  A crash loses whatever was not yet synced; ``crash_in_fsync`` is
  the chance that a sync is interrupted by a crash.
- **Nodes** follow the Ready contract: persist, sync, *then* send, apply and
  ``advance``; while a sync runs the node takes no input (it is queued).
  A crashed node restarts from its disk with an empty state machine and
  replays the committed log.
- **Clients** (see `tests.raft.clients`) propose writes and CAS with request
  ids, retrying on timeouts, and read through ReadIndex.

After every event the `Invariants` are checked; a violation raises
`SafetyViolation` with the time, so the seed that found it can be replayed.
"""

from __future__ import annotations

import functools
import heapq
import random
from collections import Counter
from typing import Any, Callable

from attrs import define, evolve, field

from skydns.raft.core.messages import AppendEntriesResponse, Entry, HardState, Message
from skydns.raft.core.raft import RaftCore, Ready, RestoredState, Role
from tests.raft.invariants import Invariants, SafetyViolation
from tests.raft.kv import KV


@define
class SimConfig:
    nodes: int = 3
    election_tick: int = 10
    heartbeat_tick: int = 1
    tick_interval: int = 10
    max_size_per_msg: int = 1024
    max_inflight: int = 8
    pre_vote: bool = True
    check_quorum: bool = True
    delay_min: int = 1
    delay_max: int = 4
    long_delay: float = 0.0
    long_delay_max: int = 80
    drop: float = 0.0
    duplicate: float = 0.0
    #: Chance that a message overtakes earlier ones on its link (else links are FIFO).
    reorder: float = 0.0
    fsync_delay: int = 1
    crash_in_fsync: float = 0.0
    #: Harness self-test only: send a Ready's messages before syncing it.
    unsafe_send_before_sync: bool = False
    #: Harness self-test only: turn off the session table's dedupe.
    dedupe: bool = True


@define
class SimDisk:
    hard_state: HardState = HardState()
    entries: list[Entry] = field(factory=list)
    unsynced: list[tuple[HardState | None, tuple[Entry, ...]]] = field(factory=list)

    def write(self, hs: HardState | None, entries: tuple[Entry, ...]) -> None:
        self.unsynced.append((hs, entries))

    def sync(self) -> None:
        for hs, entries in self.unsynced:
            if hs is not None:
                self.hard_state = hs
            if entries:
                del self.entries[entries[0].index - 1 :]
                self.entries.extend(entries)
        self.unsynced = []

    def crash(self) -> int:
        lost = len(self.unsynced)
        self.unsynced = []
        return lost


@define(eq=False)
class SimNode:
    id: str
    disk: SimDisk = field(factory=SimDisk)
    core: RaftCore | None = None
    kv: KV = field(factory=KV)
    incarnation: int = 0
    syncing: Ready | None = None
    backlog: list[Callable[[], None]] = field(factory=list)
    #: Waiters registered by clients: (client, seq) -> callback(result).
    write_waiters: dict[tuple[str, int], Callable[[Any], None]] = field(factory=dict)
    #: ReadIndex context -> callback(index) once the ReadState arrives.
    read_waiters: dict[bytes, Callable[[int], None]] = field(factory=dict)
    #: (index, callback) run once the state machine has applied index.
    apply_waiters: list[tuple[int, Callable[[], None]]] = field(factory=list)

    @property
    def up(self) -> bool:
        return self.core is not None


class Sim:
    def __init__(self, seed: int, config: SimConfig | None = None) -> None:
        self.seed = seed
        self.config = config or SimConfig()
        self.rng = random.Random(seed)
        self.now = 0
        self.steps = 0
        self.faults: Counter[str] = Counter()
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = 0
        self.ids = [f"n{i}" for i in range(1, self.config.nodes + 1)]
        self.nodes = {i: SimNode(i, kv=KV(self.config.dedupe)) for i in self.ids}
        self.blocked: set[tuple[str, str]] = set()
        self._link_clock: dict[tuple[str, str], int] = {}
        self.invariants = Invariants()
        self.leader_history: list[tuple[int, str, int]] = []  # (time, leader, term)
        #: AppendEntries rejections delivered, by the rejecting node.
        self.rejections: Counter[str] = Counter()
        for node in self.nodes.values():
            self._boot(node)
            self._schedule_tick(node.id, node.incarnation, self.rng.randrange(1, 10))

    # --- scheduling -----------------------------------------------------------

    def at(self, when: int, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, action))

    def run_until(self, until: int, stop: Callable[[], bool] | None = None) -> bool:
        """Run events up to time ``until``; True if ``stop()`` became true."""
        while self._queue and self._queue[0][0] <= until:
            when, _, action = heapq.heappop(self._queue)
            self.now = when
            action()
            self.steps += 1
            try:
                self.invariants.check(self.nodes)
            except SafetyViolation as e:
                raise SafetyViolation(f"seed {self.seed}, t={self.now}: {e}") from None
            self._note_leaders()
            if stop is not None and stop():
                return True
        self.now = max(self.now, until)
        return False

    def _note_leaders(self) -> None:
        for node in self.nodes.values():
            core = node.core
            if core is not None and core.role is Role.LEADER:
                last = self.leader_history[-1] if self.leader_history else None
                if last is None or last[1:] != (node.id, core.term):
                    self.leader_history.append((self.now, node.id, core.term))

    # --- nodes ----------------------------------------------------------------

    def _boot(self, node: SimNode) -> None:
        c = self.config
        restored = RestoredState(node.disk.hard_state, tuple(node.disk.entries))
        node.core = RaftCore(
            node.id,
            self.ids,
            restored,
            random.Random(self.rng.random()),
            election_tick=c.election_tick,
            heartbeat_tick=c.heartbeat_tick,
            max_size_per_msg=c.max_size_per_msg,
            max_inflight=c.max_inflight,
            pre_vote=c.pre_vote,
            check_quorum=c.check_quorum,
        )
        node.kv = KV(c.dedupe)

    def _schedule_tick(self, node_id: str, incarnation: int, delay: int) -> None:
        def tick() -> None:
            node = self.nodes[node_id]
            if node.incarnation != incarnation or node.core is None:
                return
            self._schedule_tick(node_id, incarnation, self.config.tick_interval)
            self.input(node, lambda core: core.tick())

        self.at(self.now + delay, tick)

    def input(self, node: SimNode, action: Callable[[RaftCore], Any]) -> None:
        """Give ``node`` an input, or queue it while the node is syncing."""
        if node.core is None:
            return
        if node.syncing is not None:
            node.backlog.append(lambda: self.input(node, action))
            return
        action(node.core)
        self.process_ready(node)

    def process_ready(self, node: SimNode) -> None:
        core = node.core
        if core is None or node.syncing is not None or not core.has_ready():
            return
        rd = core.ready()
        self.invariants.on_ready(node.id, core, rd)
        if not rd.must_sync:
            self._finish_ready(node, rd)
            return
        node.disk.write(rd.hard_state, rd.entries)
        node.syncing = rd
        if self.config.unsafe_send_before_sync:
            self._send_all(rd.messages)
            rd = evolve(rd, messages=())
            node.syncing = rd
        incarnation = node.incarnation
        crash = self.rng.random() < self.config.crash_in_fsync

        def synced() -> None:
            if node.incarnation != incarnation or node.core is None:
                return
            if crash:
                self.faults["crash during fsync"] += 1
                self.crash(node.id)
                self.at(self.now + self.rng.randrange(20, 200), lambda: self.restart(node.id))
                return
            node.disk.sync()
            node.syncing = None
            self._finish_ready(node, rd)

        self.at(self.now + self.config.fsync_delay, synced)

    def _finish_ready(self, node: SimNode, rd: Ready) -> None:
        core = node.core
        assert core is not None
        self._send_all(rd.messages)
        for entry in rd.committed_entries:
            self.invariants.on_apply(node.id, entry)
            applied = node.kv.apply(entry)
            if applied is not None:
                waiter = node.write_waiters.pop(applied[:2], None)
                if waiter is not None:
                    waiter(applied[2])
        for state in rd.read_states:
            read_waiter = node.read_waiters.pop(state.context, None)
            if read_waiter is not None:
                read_waiter(state.index)
        core.advance(rd)
        if node.apply_waiters:
            ready = [w for w in node.apply_waiters if w[0] <= node.kv.applied]
            node.apply_waiters = [w for w in node.apply_waiters if w[0] > node.kv.applied]
            for _, callback in ready:
                callback()
        backlog, node.backlog = node.backlog, []
        for action in backlog:
            action()
        self.process_ready(node)

    def crash(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.core is None:
            return
        self.faults["crash"] += 1
        if node.disk.crash():
            self.faults["unsynced writes lost"] += 1
        node.core = None
        node.syncing = None
        node.backlog = []
        node.write_waiters.clear()
        node.read_waiters.clear()
        node.apply_waiters = []
        node.incarnation += 1

    def restart(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.core is not None:
            return
        self.faults["restart"] += 1
        self._boot(node)
        self._schedule_tick(node.id, node.incarnation, self.rng.randrange(1, 10))
        self.process_ready(node)

    # --- network --------------------------------------------------------------

    def _send_all(self, messages: tuple[Message, ...]) -> None:
        for m in messages:
            self.send(m)

    def send(self, m: Message) -> None:
        c = self.config
        if c.drop and self.rng.random() < c.drop:
            self.faults["dropped"] += 1
            return
        copies = 1
        if c.duplicate and self.rng.random() < c.duplicate:
            self.faults["duplicated"] += 1
            copies = 2
        for _ in range(copies):
            delay = self.rng.randint(c.delay_min, c.delay_max)
            if c.long_delay and self.rng.random() < c.long_delay:
                self.faults["long delay"] += 1
                delay = self.rng.randint(c.delay_max, c.long_delay_max)
            when = self.now + delay
            link = (m.src, m.dst)
            if c.reorder and self.rng.random() < c.reorder:
                self.faults["reordered"] += 1
            else:
                when = max(when, self._link_clock.get(link, 0))
                self._link_clock[link] = when
            self.at(when, functools.partial(self.deliver, m))

    def deliver(self, m: Message) -> None:
        if (m.src, m.dst) in self.blocked:
            self.faults["partitioned"] += 1
            return
        node = self.nodes[m.dst]
        if isinstance(m, AppendEntriesResponse) and not m.success and node.up:
            self.rejections[m.src] += 1
        self.input(node, lambda core: core.step(m))

    def partition(self, *groups: list[str]) -> None:
        """Only nodes in the same group hear each other."""
        self.faults["partition"] += 1
        self.blocked = {
            (a, b)
            for a in self.ids
            for b in self.ids
            if a != b and not any(a in g and b in g for g in groups)
        }

    def cut(self, src: str, dst: str) -> None:
        """A one-way cut: ``dst`` stops hearing ``src``."""
        self.faults["one-way cut"] += 1
        self.blocked.add((src, dst))

    def isolate(self, node_id: str) -> None:
        self.partition([node_id], [i for i in self.ids if i != node_id])

    def heal(self) -> None:
        self.blocked = set()

    # --- observation ----------------------------------------------------------

    def leaders(self) -> list[str]:
        return [
            n.id for n in self.nodes.values() if n.core is not None and n.core.role is Role.LEADER
        ]

    def leader(self) -> str | None:
        """The leader with the highest term, if any."""
        best: tuple[int, str] | None = None
        for n in self.nodes.values():
            if n.core is not None and n.core.role is Role.LEADER:
                if best is None or n.core.term > best[0]:
                    best = (n.core.term, n.id)
        return None if best is None else best[1]

    def core(self, node_id: str) -> RaftCore:
        core = self.nodes[node_id].core
        assert core is not None, f"{node_id} is down"
        return core

    def converged(self) -> bool:
        """Every node up, one leader, all logs and applied indexes equal."""
        cores = [n.core for n in self.nodes.values()]
        if any(c is None for c in cores) or len(self.leaders()) != 1:
            return False
        first = cores[0]
        assert first is not None
        return all(
            c is not None
            and c.log.last_index() == first.log.last_index()
            and c.log.applied == first.log.last_index()
            and c.log.committed == first.log.last_index()
            for c in cores
        )

    def settle(self, within: int) -> bool:
        """Heal, restart everyone, and run until converged (or ``within`` runs out)."""
        self.heal()
        for node_id in self.ids:
            self.restart(node_id)
        return self.run_until(self.now + within, self.converged)
