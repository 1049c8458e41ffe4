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
