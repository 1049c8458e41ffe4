"""The pure core's snapshot handling: compaction, InstallSnapshot, resend."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from skydns.raft.core.messages import (
    AppendEntriesResponse,
    Configuration,
    InstallSnapshot,
    SnapshotMeta,
)
from skydns.raft.core.progress import ProgressState
from skydns.raft.core.raft import RaftCore, Role
from tests.raft.test_core import Net, drain


def _compacted_cluster() -> tuple[Net, RaftCore]:
    """a leads, c was cut off while 5 entries committed, a compacted them."""
    net = Net()
    leader = net.elect("a")
    net.cut.add("c")
    for n in range(5):
        leader.propose(b"x%d" % n)
    net.flush()
    meta = leader.snapshot_meta(leader.log.applied)
    leader.compact(meta)
    net.cut.clear()
    return net, leader


class SnapshotCoreTests(SynchronousTestCase):
    def test_compact_drops_applied_entries(self) -> None:
        net, leader = _compacted_cluster()
        self.assertEqual(leader.log.snapshot.index, leader.log.applied)
        self.assertEqual(leader.log.entries, [])
        self.assertEqual(leader.log.snapshot.config, Configuration(frozenset("abc")))
        self.assertIsNone(leader.log.term(1))

    def test_cannot_snapshot_past_applied(self) -> None:
        net = Net()
        leader = net.elect("a")
        net.cut.update("bc")
        leader.propose(b"x")
        self.assertRaises(ValueError, leader.snapshot_meta, leader.log.last_index())

    def test_lagging_follower_catches_up_by_snapshot(self) -> None:
        """The follower gets the snapshot in a Ready before any later entry,
        acknowledges it only after that Ready, and replication resumes."""
        net, leader = _compacted_cluster()
        snap_index = leader.log.snapshot.index
        leader.propose(b"after")
        leader.tick()  # a heartbeat: c's answer makes the leader probe c again
        c = net.nodes["c"]
        for m in drain(leader).messages:
            if m.dst == "c":
                c.step(m)
        for m in drain(c).messages:
            leader.step(m)
        msgs = drain(leader).messages
        install = next(m for m in msgs if isinstance(m, InstallSnapshot) and m.dst == "c")
        self.assertEqual(install.meta.index, snap_index)
        self.assertIs(leader.progress["c"].state, ProgressState.SNAPSHOT)
        c.step(InstallSnapshot("a", "c", install.term, install.meta, b"DATA"))
        rd = c.ready()
        self.assertEqual(rd.snapshot, install.meta)
        self.assertEqual(rd.snapshot_data, b"DATA")
        self.assertTrue(rd.must_sync)
        self.assertEqual(rd.committed_entries, ())
        ack = [m for m in rd.messages if isinstance(m, AppendEntriesResponse)]
        self.assertEqual([(m.success, m.index) for m in ack], [(True, snap_index)])
        c.advance(rd)
        self.assertEqual(c.log.committed, snap_index)
        self.assertFalse(c.has_ready())
        leader.step(ack[0])
        self.assertIs(leader.progress["c"].state, ProgressState.PROBE)
        net.flush()
        leader.tick()
        net.flush()
        self.assertEqual(c.log.last_index(), leader.log.last_index())
        self.assertEqual(c.log.committed, leader.log.committed)
        self.assertEqual([e.data for e in net.applied["c"] if e.data], [b"after"])

    def test_stale_term_snapshot_is_refused(self) -> None:
        net, leader = _compacted_cluster()
        c = net.nodes["c"]
        c.term = leader.term + 1
        meta = leader.log.snapshot
        c.step(InstallSnapshot("a", "c", leader.term, meta, b"DATA"))
        rd = drain(c)
        self.assertIsNone(rd.snapshot)
        self.assertEqual(c.log.committed, 1)
        self.assertEqual([m.term for m in rd.messages], [leader.term + 1])

    def test_old_snapshot_only_acknowledged(self) -> None:
        net, leader = _compacted_cluster()
        b = net.nodes["b"]
        committed = b.log.committed
        b.step(InstallSnapshot("a", "b", leader.term, SnapshotMeta(2, leader.term), b""))
        rd = drain(b)
        self.assertIsNone(rd.snapshot)
        acks = [m for m in rd.messages if isinstance(m, AppendEntriesResponse)]
        self.assertEqual([(m.success, m.index) for m in acks], [(True, committed)])
        self.assertEqual(len(acks), len(rd.messages))
        self.assertEqual(b.log.last_index(), leader.log.last_index())

    def test_snapshot_of_held_entries_moves_commit_only(self) -> None:
        net = Net()
        leader = net.elect("a")
        leader.propose(b"x")
        drain(leader)  # b never hears that x committed
        b = net.nodes["b"]
        net.flush()
        meta = leader.snapshot_meta(leader.log.applied)
        b.log.committed = 1
        b.step(InstallSnapshot("a", "b", leader.term, meta, b""))
        rd = drain(b)
        self.assertIsNone(rd.snapshot)
        self.assertEqual(b.log.committed, meta.index)
        self.assertEqual(len(b.log.entries), meta.index)

    def test_lost_snapshot_is_sent_again(self) -> None:
        net, leader = _compacted_cluster()
        leader.propose(b"after")
        leader.tick()
        c = net.nodes["c"]
        for m in drain(leader).messages:
            if m.dst == "c":
                c.step(m)
        for m in drain(c).messages:
            leader.step(m)
        lost = drain(leader).messages  # the InstallSnapshot is lost
        self.assertTrue(any(isinstance(m, InstallSnapshot) for m in lost))
        self.assertIs(leader.progress["c"].state, ProgressState.SNAPSHOT)
        net.flush()
        leader.tick()
        net.flush()
        self.assertIs(leader.progress["c"].state, ProgressState.SNAPSHOT)
        sent = len([m for m in net.sent if isinstance(m, InstallSnapshot)])
        for _ in range(leader.snapshot_timeout_tick + 1):
            leader.tick()
            net.flush()
        resent = [m for m in net.sent if isinstance(m, InstallSnapshot)]
        self.assertGreater(len(resent), sent)
        self.assertEqual(net.nodes["c"].log.last_index(), leader.log.last_index())

    def test_restart_from_snapshot_keeps_its_config(self) -> None:
        from skydns.raft.core.messages import HardState
        from skydns.raft.core.raft import RestoredState
        from tests.raft.test_core import make

        config = Configuration(frozenset({"a", "b", "c", "d"}), frozenset({"e"}))
        meta = SnapshotMeta(10, 2, config)
        core = make("d", restored=RestoredState(HardState(2, None, 10), (), meta))
        self.assertEqual(core.config, config)
        self.assertEqual(core.log.applied, 10)
        self.assertEqual(core.config_at(10), config)
        self.assertIs(core.role, Role.FOLLOWER)
