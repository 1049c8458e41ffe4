"""The simulation with snapshots, log compaction and membership changes.

`SnapSim` extends `tests.raft.sim.Sim`:

- every node snapshots its state machine (the KV store *and* its session
  table) every ``every`` applied entries: the snapshot is durable at once
  (as ``save_snapshot`` is), the disk forgets the entries it covers and the
  core keeps a tail of ``keep`` entries in memory;
- a leader's `InstallSnapshot` carries its last stored snapshot whole (the
  chunking is the node's business, tested in ``tests/test_raft_snapshots.py``);
  the follower writes it with the Ready that accepts it, so a crash before
  that Ready's sync loses it like any unsynced write;
- a restart restores the state machine from the stored snapshot and replays
  the log suffix;
- nodes beyond the first ``members`` start fresh (no configuration: they
  never campaign) and join through CONFIG entries (`change`).

On top of the base invariants it checks that no leader ever holds more than
one uncommitted CONFIG entry (one membership change in flight), and that
every leader was elected by a majority of the voters of the configuration it
holds (in force once appended), counted from the voters' durable votes.
"""

from __future__ import annotations

import json
import random
from typing import Any

from attrs import define

from skydns.raft.core.messages import (
    Configuration,
    Entry,
    EntryKind,
    InstallSnapshot,
    Message,
    SnapshotMeta,
)
from skydns.raft.core.raft import ConfigChangeRefused, NotLeader, ProposalDropped, RaftCore, Role
from skydns.raft.core.ready import RestoredState
from skydns.raft.node.sessions import SessionTable
from tests.raft.invariants import SafetyViolation
from tests.raft.kv import KV
from tests.raft.sim import Sim, SimConfig, SimDisk, SimNode


@define
class SnapDisk(SimDisk):
    #: The entries list starts after this index (the stored snapshot's).
    offset: int = 0
    snapshot: tuple[SnapshotMeta, bytes] | None = None
    #: A leader's snapshot written with the Ready that accepted it (unsynced).
    unsynced_snapshot: tuple[SnapshotMeta, bytes] | None = None

    def sync(self) -> None:
        if self.unsynced_snapshot is not None:
            self.snapshot = self.unsynced_snapshot
            self.offset = self.snapshot[0].index
            self.entries = []
            self.unsynced_snapshot = None
        for hs, entries in self.unsynced:
            if hs is not None:
                self.hard_state = hs
            if entries:
                del self.entries[entries[0].index - self.offset - 1 :]
                self.entries.extend(entries)
        self.unsynced = []

    def crash(self) -> int:
        lost = len(self.unsynced) + (self.unsynced_snapshot is not None)
        self.unsynced = []
        self.unsynced_snapshot = None
        return lost

    def store_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        """A snapshot of applied state: durable at once, then compact."""
        if meta.index <= self.offset:
            return
        self.snapshot = (meta, data)
        del self.entries[: meta.index - self.offset]
        self.offset = meta.index


def kv_snapshot(kv: KV) -> bytes:
    body = {"data": kv.data, "sessions": kv.sessions.snapshot(), "applied": kv.applied}
    return json.dumps(body, sort_keys=True).encode()


def kv_restore(data: bytes, dedupe: bool) -> KV:
    body = json.loads(data)
    kv = KV(dedupe)
    kv.data = body["data"]
    kv.sessions = SessionTable.restore({c: (s, r) for c, (s, r) in body["sessions"].items()})
    kv.applied = body["applied"]
    return kv


class SnapSim(Sim):
    def __init__(
        self,
        seed: int,
        config: SimConfig | None = None,
        members: int | None = None,
        every: int = 30,
        keep: int = 5,
    ) -> None:
        config = config or SimConfig()
        self.members = [f"n{i}" for i in range(1, (members or config.nodes) + 1)]
        self.every = every
        self.keep = keep
        self.installs = 0
        self.snapshots_taken = 0
        self.snapshot_sends = 0
        self._elected: set[tuple[str, int]] = set()
        super().__init__(seed, config)

    # --- nodes ----------------------------------------------------------------

    def _boot(self, node: SimNode) -> None:
        if not isinstance(node.disk, SnapDisk):
            node.disk = SnapDisk()
        disk = node.disk
        assert isinstance(disk, SnapDisk)
        c = self.config
        meta = SnapshotMeta()
        node.kv = KV(c.dedupe)
        if disk.snapshot is not None:
            meta, data = disk.snapshot
            node.kv = kv_restore(data, c.dedupe)
        restored = RestoredState(disk.hard_state, tuple(disk.entries), meta, meta.index)
        node.core = RaftCore(
            node.id,
            self.members if node.id in self.members else [],
            restored,
            random.Random(self.rng.random()),
            election_tick=c.election_tick,
            heartbeat_tick=c.heartbeat_tick,
            max_size_per_msg=c.max_size_per_msg,
            max_inflight=c.max_inflight,
            pre_vote=c.pre_vote,
            check_quorum=c.check_quorum,
        )

    def process_ready(self, node: SimNode) -> None:
        core = node.core
        if core is not None and node.syncing is None and core.pending_snapshot is not None:
            m = core.pending_snapshot
            assert isinstance(node.disk, SnapDisk)
            node.disk.unsynced_snapshot = (m.meta, m.data)
            node.kv = kv_restore(m.data, self.config.dedupe)
            self.installs += 1
            self.faults["snapshot installed"] += 1
        super().process_ready(node)

    def _finish_ready(self, node: SimNode, rd: Any) -> None:
        super()._finish_ready(node, rd)
        self._maybe_snapshot(node)

    def _maybe_snapshot(self, node: SimNode) -> None:
        core = node.core
        disk = node.disk
        assert isinstance(disk, SnapDisk)
        if core is None or core.log.applied != node.kv.applied:
            return
        applied = core.log.applied
        if applied - disk.offset < self.every:
            return
        disk.store_snapshot(core.snapshot_meta(applied), kv_snapshot(node.kv))
        self.snapshots_taken += 1
        keep_from = min(applied - self.keep, core.log.unstable - 1)
        if keep_from > core.log.snapshot.index:
            core.compact(core.snapshot_meta(keep_from))

    # --- network --------------------------------------------------------------

    def send(self, m: Message) -> None:
        if isinstance(m, InstallSnapshot) and not m.data:
            disk = self.nodes[m.src].disk
            assert isinstance(disk, SnapDisk) and disk.snapshot is not None
            meta, data = disk.snapshot
            m = InstallSnapshot(m.src, m.dst, m.term, meta, data)
            self.snapshot_sends += 1
        super().send(m)

    # --- membership -------------------------------------------------------------

    def change(self, new: Configuration) -> bool:
        """Ask the current leader to move to ``new``; False if refused now."""
        leader = self.leader()
        if leader is None:
            return False
        node = self.nodes[leader]
        if node.syncing is not None:
            return False
        try:
            node.core.change_config(new)  # type: ignore[union-attr]
        except (ConfigChangeRefused, NotLeader, ProposalDropped):
            return False
        self.faults["membership change"] += 1
        self.process_ready(node)
        return True

    def change_until(self, new: Configuration, within: int) -> None:
        """Retry `change` until accepted and committed everywhere it matters."""
        deadline = self.now + within
        while self.now < deadline:
            if self.change(new):
                break
            self.run_until(self.now + 20)
        else:
            raise AssertionError(f"the change to {new} was never accepted")
        self.run_until(deadline, lambda: self.committed_config() == new)
        assert self.committed_config() == new, f"{new} not committed: {self.committed_config()}"

    def committed_config(self) -> Configuration | None:
        leader = self.leader()
        if leader is None:
            return None
        core = self.core(leader)
        if core.config_pending():
            return None
        return core.config

    def caught_up(self, node_id: str, lag: int = 3) -> bool:
        leader = self.leader()
        if leader is None:
            return False
        core = self.core(leader)
        pr = core.progress.get(node_id)
        return pr is not None and pr.match >= core.log.last_index() - lag

    def converged(self) -> bool:
        """Every member up and equal to the one leader (non-members ignored)."""
        leaders = self.leaders()
        if len(leaders) != 1:
            return False
        lead = self.core(leaders[0])
        members = lead.config.voters | lead.config.learners
        last = lead.log.last_index()
        for node_id in members:
            core = self.nodes[node_id].core
            if core is None or core.log.last_index() != last:
                return False
            if core.log.applied != last or core.log.committed != last:
                return False
        return True

    def run_until(self, until: int, stop: Any = None) -> bool:
        def check() -> bool:
            self._check_membership()
            return bool(stop()) if stop is not None else False

        return super().run_until(until, check)

    def _check_membership(self) -> None:
        """One change in flight per leader, and every leader elected by a
        majority of the voters of the configuration *it* holds (the one in
        force when appended)."""
        for node in self.nodes.values():
            core = node.core
            if core is None or core.role is not Role.LEADER:
                continue
            if (node.id, core.term) not in self._elected:
                self._elected.add((node.id, core.term))
                votes = [
                    v
                    for v in core.config.voters
                    if self.nodes[v].disk.hard_state.term == core.term
                    and self.nodes[v].disk.hard_state.vote == node.id
                ]
                if len(votes) < core.quorum():
                    raise SafetyViolation(
                        f"seed {self.seed}, t={self.now}: {node.id} leads term {core.term} "
                        f"with votes of {sorted(votes)} only, in {sorted(core.config.voters)}"
                    )
            uncommitted = core.log.entries[core.log.committed - core.log.snapshot.index :]
            pending = [e for e in uncommitted if e.kind is EntryKind.CONFIG]
            if len(pending) > 1:
                raise SafetyViolation(
                    f"seed {self.seed}, t={self.now}: {node.id} leads with "
                    f"{len(pending)} membership changes in flight"
                )


def voters(*ids: str, learners: tuple[str, ...] = ()) -> Configuration:
    return Configuration(frozenset(ids), frozenset(learners))


__all__ = ["Entry", "SnapSim", "voters"]
