"""Membership changes in the Raft node: join as learner, promotion, removal."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from skydns.commands import Register
from skydns.raft.net.interface import MemberChangeError
from tests.raftnodes import NodeUnderTest, service
from tests.test_raft_snapshots import SnapshotCluster, contents


def fresh(cluster: SnapshotCluster, node_id: str) -> NodeUnderTest:
    """A new node, started with ``--join``: it knows only its own address."""
    return cluster.start(node_id, {node_id: f"127.0.0.1:{7100 + len(cluster.nodes)}"},
                         joining=True)  # fmt: skip


class MembersTests(SynchronousTestCase):
    def test_join_as_learner_then_promoted(self) -> None:
        """A fresh node added by the leader gets the snapshot and the log as a
        learner, is promoted once caught up, and shows up in every status."""
        cluster = SnapshotCluster()
        cluster.write(45)
        leader = cluster.leader()
        assert leader is not None
        d = fresh(cluster, "d")
        cluster.run(1.0)
        self.assertFalse(d.is_leader())
        self.assertEqual(d.core.config.voters, frozenset())  # it never campaigned
        added = leader.add_member("d", "127.0.0.1:7103")
        cluster.run(2.0)
        self.successResultOf(added)
        self.assertEqual(leader.core.config.voters, frozenset("abcd"))
        self.assertEqual(d.core.config.voters, frozenset("abcd"))
        self.assertEqual(d.snapshots.installed, 1)
        self.assertEqual(contents(d.registry), contents(leader.registry))
        roles = {m["id"]: m["role"] for m in leader.status()["members"]}
        self.assertEqual(set(roles), {"a", "b", "c", "d"})
        self.assertEqual(leader.addresses["d"], "127.0.0.1:7103")
        self.assertEqual(d.addresses["a"], leader.addresses["a"])

    def test_errors(self) -> None:
        cluster = SnapshotCluster()
        leader = cluster.elect()
        cluster.run(0.2)
        exists = self.failureResultOf(leader.add_member("b", "127.0.0.1:1"), MemberChangeError)
        self.assertEqual(exists.value.kind, "exists")
        missing = self.failureResultOf(leader.remove_member("zz"), MemberChangeError)
        self.assertEqual(missing.value.kind, "not_found")
        bad = self.failureResultOf(leader.add_member("d", "no port"), MemberChangeError)
        self.assertEqual(bad.value.kind, "invalid")
        leader.add_member("d", "127.0.0.1:1")
        busy = self.failureResultOf(leader.add_member("e", "127.0.0.1:2"), MemberChangeError)
        self.assertEqual(busy.value.kind, "refused")
        # A follower forwards a change to the leader, which answers it.
        forwarded = cluster.follower().remove_member("zz")
        cluster.run(0.1)
        self.assertEqual(self.failureResultOf(forwarded, MemberChangeError).value.kind,
                         "not_found")  # fmt: skip

    def test_remove_follower_and_leader(self) -> None:
        cluster = SnapshotCluster()
        leader = cluster.elect()
        cluster.run(0.2)
        follower = cluster.follower()
        removed = leader.remove_member(follower.id)
        cluster.run(0.5)
        self.successResultOf(removed)
        self.assertNotIn(follower.id, leader.addresses)
        self.assertEqual(len(leader.core.config.voters), 2)
        # Now the leader removes itself: it hands over and steps down.
        removing = leader.remove_member(leader.id)
        cluster.run(2.0)
        self.successResultOf(removing)
        self.assertFalse(leader.is_leader())
        new = cluster.leader()
        assert new is not None
        self.assertEqual(new.core.config.voters, frozenset({new.id}))
        d = new.propose(Register(service("after"), 0.0))
        cluster.run(0.2)
        self.assertEqual(self.successResultOf(d).status, "ok")


class ReplicaTests(SynchronousTestCase):
    """A read replica (``--non-voter``) is a learner no leader ever promotes:
    it gets the log and serves reads, and never counts in a quorum."""

    def add_replica(self, cluster: SnapshotCluster) -> NodeUnderTest:
        leader = cluster.elect()
        d = fresh(cluster, "d")
        added = leader.node.change_member("replica", "d", "127.0.0.1:7103")
        cluster.run(2.0)
        self.successResultOf(added)
        return d

    def assert_replica(self, cluster: SnapshotCluster, d: NodeUnderTest) -> None:
        leader = cluster.elect()
        self.assertEqual(leader.core.config.voters, frozenset("abc"))
        self.assertEqual(leader.core.config.learners, frozenset("d"))
        roles = {m["id"]: m["role"] for m in leader.status()["members"]}
        self.assertEqual(roles["d"], "replica")
        self.assertEqual(d.status()["role"], "replica")
        self.assertEqual(contents(d.registry), contents(leader.registry))

    def test_never_promoted_by_any_leader(self) -> None:
        """Caught up for many ticks, across a leader change and a compaction
        of the entry that added it (the new leader reads the snapshot), it
        stays a replica."""
        cluster = SnapshotCluster()
        cluster.write(5)
        d = self.add_replica(cluster)
        cluster.run(3.0)
        self.assert_replica(cluster, d)
        old = cluster.elect()
        cluster.crash(old.id)
        cluster.write(60, prefix="after")  # past two snapshots: the CONFIG entry is compacted
        new = cluster.elect()
        self.assertNotEqual(new.id, old.id)
        self.assertGreater(new.core.log.snapshot.index, new.core.config_index - 1)
        cluster.start(old.id)
        cluster.run(3.0)
        self.assert_replica(cluster, d)
        # Restarted from its own snapshot, a voter still knows.
        self.assertEqual(cluster.nodes[old.id].node.members.replicas(), frozenset("d"))

    def test_not_in_the_quorum(self) -> None:
        """With two of the three voters down, the replica does not make a
        majority: nothing commits, and it never campaigns."""
        cluster = SnapshotCluster()
        d = self.add_replica(cluster)
        leader = cluster.elect()
        others = [n for n in "abc" if n != leader.id]
        cluster.crash(others[0])
        cluster.crash(others[1])
        write = leader.propose(Register(service("lost"), 0.0))
        cluster.run(1.0)
        self.assertNoResult(write)
        cluster.crash(leader.id)
        self.failureResultOf(write)  # never committed: the crash ends it
        cluster.run(3.0)
        self.assertFalse(d.is_leader())
        self.assertEqual(d.core.term, leader.core.term)

    def test_a_replica_reads_and_forwards_writes(self) -> None:
        cluster = SnapshotCluster()
        d = self.add_replica(cluster)
        written = d.propose(Register(service("via-replica"), 0.0))
        cluster.run(0.5)
        self.assertEqual(self.successResultOf(written).status, "ok")
        self.assertIsNotNone(d.registry.get("via-replica", 0.0))

    def test_joining_again_and_removed(self) -> None:
        """A replica asking to join again (either way: added first, then
        started with --join) is done and stays a replica; a voter is not
        made a replica; removed, it leaves the list of replicas."""
        cluster = SnapshotCluster()
        self.add_replica(cluster)
        leader = cluster.elect()
        for op in ("replica", "add"):
            again = leader.node.change_member(op, "d", "127.0.0.1:7103")
            cluster.run(0.2)
            self.successResultOf(again)
        self.assertEqual(leader.node.members.replicas(), frozenset("d"))
        refused = self.failureResultOf(
            leader.node.change_member("replica", "b", leader.addresses["b"]), MemberChangeError)
        self.assertEqual(refused.value.kind, "exists")
        removed = leader.remove_member("d")
        cluster.run(0.5)
        self.successResultOf(removed)
        self.assertEqual(leader.node.members.replicas(), frozenset())
