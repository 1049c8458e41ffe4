"""build_cluster: what tap.py gets for the one-node default and for --peers."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from skydns.cluster import ICluster
from skydns.config import HostPort, Peer
from skydns.raft.storage.errors import DataDirLocked
from skydns.registry import Registry
from skydns.store.raft import RaftCluster, build_cluster, listen_address


class _Reactor(MemoryReactorClock):
    """A memory reactor with the thread pool `build_cluster` asks for (unused
    here: nothing is saved before the node starts)."""

    def getThreadPool(self) -> object:  # noqa: N802 - IReactorThreads' name
        return object()


class ListenAddressTests(SynchronousTestCase):
    def test_tcp_descriptions(self) -> None:
        self.assertEqual(listen_address("tcp:7070:interface=127.0.0.1"), "127.0.0.1:7070")
        self.assertEqual(listen_address("tcp:port=7071:interface=10.0.0.2"), "10.0.0.2:7071")
        self.assertEqual(listen_address("tcp:7070"), "0.0.0.0:7070")
        self.assertEqual(listen_address("unix:/run/raft.sock"), "unix:/run/raft.sock")


class BuildClusterTests(SynchronousTestCase):
    def build(self, data_dir: str, peers: list[Peer] | None = None) -> object:
        cluster, service = build_cluster(
            "n1", peers, "tcp:7070:interface=127.0.0.1", data_dir, Registry(),
            _Reactor(), fail_stop=self.fail,
        )  # fmt: skip
        assert isinstance(cluster, RaftCluster)
        self.addCleanup(cluster.node.storage.close)
        self.assertIs(cluster.node, service)
        verifyObject(ICluster, cluster)
        return cluster

    def test_one_node_default_is_a_one_voter_cluster(self) -> None:
        """Without --peers the node is the only voter, at its Raft address."""
        cluster = self.build(self.mktemp())
        status = cluster.status()  # type: ignore[attr-defined]
        self.assertEqual(status["id"], "n1")
        member = {"id": "n1", "address": "127.0.0.1:7070", "role": "follower"}
        self.assertEqual(status["members"], [member])

    def test_peers_are_members(self) -> None:
        peers = [Peer("n1", HostPort("127.0.0.1", 7070)), Peer("n2", HostPort("127.0.0.2", 7070)),
                 Peer("n3", HostPort("::1", 7071))]  # fmt: skip
        cluster = self.build(self.mktemp(), peers)
        members = cluster.status()["members"]  # type: ignore[attr-defined]
        self.assertEqual([(m["id"], m["address"]) for m in members],
                         [("n1", "127.0.0.1:7070"), ("n2", "127.0.0.2:7070"),
                          ("n3", "[::1]:7071")])  # fmt: skip

    def test_a_data_dir_serves_one_node_at_a_time(self) -> None:
        """A second node on the same data dir is refused before it listens."""
        path = self.mktemp()
        self.build(path)
        self.assertRaises(DataDirLocked, self.build, path)
