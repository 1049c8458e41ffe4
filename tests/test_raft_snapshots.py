"""Snapshots in the Raft node: taking, compaction, restart, catch-up by
InstallSnapshot in chunks; the snapshot encoding and the chunk assembler."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from skydns.commands import Register
from skydns.raft.core.messages import InstallSnapshot, SnapshotMeta
from skydns.raft.node import snapshots
from skydns.raft.node.machine import SnapshotError
from skydns.raft.node.options import NodeOptions
from skydns.raft.node.sessions import SessionTable
from skydns.raft.node.transfer import Assembler, frame_chunks
from skydns.registry import Applied, Outcome, Registry
from skydns.registry import snapshot as registry_module
from skydns.store.machine import RegistryMachine
from tests.raftnodes import Cluster, NodeUnderTest, service


def decode_state(data: bytes) -> tuple[Registry, SessionTable[Applied]]:
    """The registry and session table a node's snapshot holds."""
    registry, sessions, _, _ = snapshots.decode(RegistryMachine(Registry()), data)
    return registry, sessions


def take(registry: Registry, table: SessionTable[Applied]) -> bytes:
    steps = snapshots.take_steps(RegistryMachine(registry), table.snapshot(), {})
    return b"".join(snapshots.run_steps(steps))


def contents(registry: Registry) -> object:
    """The registry's instances and callbacks (its version is local)."""
    return json.loads(registry.snapshot())["instances"]


class SnapshotCluster(Cluster):
    def __init__(
        self,
        ids: Sequence[str] = ("a", "b", "c"),
        every: int = 20,
        keep: int = 5,
        thread_delay: float | None = None,
    ):
        self.every, self.keep = every, keep
        super().__init__(ids, options=NodeOptions(snapshot_entries=every, keep_entries=keep),
                         thread_delay=thread_delay)  # fmt: skip

    def start(self, node_id: str, *args: Any, **options: Any) -> NodeUnderTest:
        node = super().start(node_id, *args, **options)
        node.snapshots.chunk_size = 300  # many chunks per snapshot
        return node

    def write(self, count: int, prefix: str = "u") -> None:
        leader = self.elect()
        for n in range(count):
            d = leader.propose(Register(service(f"{prefix}{n}", f"10.0.{n // 250}.{n % 250}"), 0.0))
            self.run(0.02)
            assert d.called


class NodeSnapshotTests(SynchronousTestCase):
    def test_snapshot_taken_and_log_compacted(self) -> None:
        """Past the threshold (20 entries, give or take 5) every node stores
        a snapshot and its log keeps only the tail after the compaction
        point."""
        cluster = SnapshotCluster()
        cluster.write(50)
        for node_id, node in cluster.nodes.items():
            stored = cluster.storages[node_id].read_snapshot()
            assert stored is not None, node_id
            meta, data = stored
            self.assertGreater(meta.index, node.core.log.applied - 25)
            self.assertEqual(meta.config and meta.config.voters, frozenset("abc"))
            registry, _ = decode_state(data)
            self.assertGreaterEqual(len(registry), 25)
            self.assertEqual(node.core.log.snapshot.index, meta.index - 5)
            loaded = cluster.storages[node_id].load()
            loaded_meta, entries = loaded.snapshot, loaded.entries
            self.assertEqual(loaded_meta, meta)
            self.assertTrue(all(e.index > meta.index for e in entries))

    def test_members_snapshot_at_different_points(self) -> None:
        """Each member draws its next snapshot point anew, within a quarter
        of ``snapshot_entries`` either side: the members of a cluster do
        not all encode a snapshot at the same moment."""
        cluster = SnapshotCluster(every=40)
        points: dict[str, set[int]] = {node_id: set() for node_id in cluster.nodes}
        for _ in range(12):
            cluster.write(20)
            for node_id, node in cluster.nodes.items():
                self.assertTrue(30 <= node.snapshots.due <= 50)
                if node.snapshots.latest is not None:
                    points[node_id].add(node.snapshots.latest[0].index)
        self.assertTrue(all(len(p) >= 4 for p in points.values()), points)
        self.assertNotEqual(points["a"], points["b"])
        self.assertNotEqual(points["b"], points["c"])

    def test_restart_from_snapshot_and_suffix(self) -> None:
        """A restarted node has the same registry and session table as before."""
        cluster = SnapshotCluster()
        cluster.write(47)
        follower = cluster.follower()
        before = contents(follower.registry)
        sessions = follower.sessions.snapshot()
        self.assertTrue(sessions)
        cluster.crash(follower.id)
        restarted = cluster.start(follower.id)
        cluster.run(0.5)  # the commit index of the last entries comes from the leader
        self.assertEqual(contents(restarted.registry), before)
        self.assertEqual(restarted.sessions.snapshot().keys(), sessions.keys())
        for client, (seq, _) in sessions.items():
            self.assertEqual(restarted.sessions.last_seq(client), seq)
        self.assertGreater(restarted.core.log.snapshot.index, 0)
        self.assertEqual(restarted.applied_index, follower.applied_index)

    def test_follower_behind_compaction_catches_up_by_snapshot(self) -> None:
        """A follower down while the log moved past the compaction point gets
        the snapshot in chunks, then the suffix, and ends equal to the leader."""
        cluster = SnapshotCluster()
        cluster.elect()
        down = cluster.follower().id
        cluster.crash(down)
        cluster.write(60)
        leader = cluster.leader()
        assert leader is not None
        self.assertGreater(leader.core.log.snapshot.index, 1)
        sent_before = len(cluster.network.sent)
        node = cluster.start(down)
        cluster.write(3, prefix="after")
        cluster.run(1.0)
        chunks = [m for m in cluster.network.sent[sent_before:] if isinstance(m, InstallSnapshot)]
        self.assertGreater(len(chunks), 3)
        self.assertEqual(node.snapshots.installed, 1)
        self.assertEqual(contents(node.registry), contents(leader.registry))
        self.assertEqual(node.applied_index, leader.applied_index)
        self.assertEqual(len(node.registry), 63)
        # The exactly-once table came with the snapshot.
        self.assertEqual(node.sessions.snapshot().keys(), leader.sessions.snapshot().keys())
        # And it survives a restart from what it persisted.
        cluster.crash(down)
        again = cluster.start(down)
        cluster.run(0.5)
        self.assertEqual(contents(again.registry), contents(leader.registry))

    def test_snapshot_in_a_thread_while_writes_go_on(self) -> None:
        """While a snapshot is being encoded and written (off the reactor),
        writes keep committing; the core compacts once it is stored."""
        cluster = SnapshotCluster(thread_delay=0.5)
        leader = cluster.elect()
        cluster.write(21)
        taking = leader.snapshots.taking
        self.assertIsNotNone(taking)
        self.assertEqual(leader.core.log.snapshot.index, 0)
        cluster.write(10, prefix="during")  # 0.2 s of writes, each committed
        self.assertEqual(leader.core.log.snapshot.index, 0)
        cluster.run(0.5)
        self.assertIsNone(leader.snapshots.taking)
        self.assertGreater(leader.core.log.snapshot.index, 0)
        self.assertEqual(len(leader.registry), 31)

    def stepped_cluster(self) -> SnapshotCluster:
        """A cluster whose nodes encode snapshots in steps 10 ms apart, as
        a real node does (1 ms apart), two instances a step: a snapshot of
        21 instances takes about 17 steps."""
        self.patch(registry_module, "_SNAPSHOT_CHUNK", 2)
        self.patch(registry_module, "_SNAPSHOT_SORT_SLICE", 4)
        cluster = SnapshotCluster()
        for node in cluster.nodes.values():
            node.snapshots.step_later = functools.partial(cluster.clock.callLater, 0.01)
        return cluster

    def test_snapshot_encoded_in_steps_while_writes_go_on(self) -> None:
        """A snapshot encoded in steps (as a real node does) lets writes
        commit between its steps, and holds the state at its own index:
        none of the writes applied meanwhile."""
        cluster = self.stepped_cluster()
        leader = cluster.elect()
        cluster.write(21)
        self.assertIsNotNone(leader.snapshots.taking)
        cluster.write(3, prefix="during")
        self.assertIsNotNone(leader.snapshots.taking)  # still encoding
        self.assertEqual(len(leader.registry), 24)
        cluster.run(0.5)
        self.assertIsNone(leader.snapshots.taking)
        assert leader.snapshots.latest is not None
        meta, data = leader.snapshots.latest
        held, _ = decode_state(data)
        uuids = {item["service"]["uuid"] for item in contents(held)}  # type: ignore[attr-defined]
        self.assertFalse({u for u in uuids if u.startswith("during")})
        self.assertGreaterEqual(len(uuids), 19)
        self.assertEqual(leader.core.log.snapshot.index, meta.index - cluster.keep)

    def test_stopping_node_abandons_the_snapshot_it_encodes(self) -> None:
        """A node that begins to stop while it encodes a snapshot in steps
        stops at the next step, without storing it: its log still holds
        every entry, and shutting down waits for no snapshot."""
        cluster = self.stepped_cluster()
        leader = cluster.elect()
        follower = cluster.follower()
        for batch in range(30):  # up to the follower's snapshot point (20 give or take 5)
            cluster.write(1, prefix=f"b{batch}-")
            if follower.snapshots.taking is not None:
                break
        self.assertIsNotNone(follower.snapshots.taking)
        stopped = follower.stopService()
        cluster.clock.advance(0.01)
        self.successResultOf(stopped)
        self.assertIsNone(follower.snapshots.taking)
        self.assertIsNone(follower.snapshots.latest)
        self.assertIsNone(cluster.storages[follower.id].read_snapshot())
        self.assertEqual(follower.snapshots.taken, 0)
        for n in range(30):
            leader.propose(Register(service(f"after{n}", f"10.1.0.{n}"), 0.0))
            cluster.run(0.02)
        cluster.run(1.0)
        self.assertGreater(leader.snapshots.taken, 0)  # the others go on


class EncodingTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        registry = Registry()
        registry.apply(Register(service("x1"), 0.0))
        table: SessionTable[Applied] = SessionTable()
        table.apply("client", 4, lambda: Applied(Outcome.OK))
        data = take(registry, table)
        restored, sessions = decode_state(data)
        self.assertEqual(restored, registry)
        cached = sessions.apply("client", 4, lambda: Applied(Outcome.NOT_FOUND))
        self.assertEqual(cached, Applied(Outcome.OK))

    def test_garbage_is_refused(self) -> None:
        self.assertRaises(SnapshotError, decode_state, b"nonsense and more nonsense")

    def test_replace_with_keeps_listeners(self) -> None:
        registry = Registry()
        seen: list[int] = []
        registry.add_listener(lambda: seen.append(1))
        other = Registry()
        other.apply(Register(service("x1"), 0.0))
        registry.replace_with(other)
        self.assertEqual(contents(registry), contents(other))
        self.assertEqual(seen, [1])
        self.assertIsNotNone(registry.get("x1", 0.0))


def _chunks(data: bytes, term: int = 2, index: int = 9, src: str = "a") -> list[InstallSnapshot]:
    meta = SnapshotMeta(index, term)
    return [InstallSnapshot(src, "b", term, meta, c) for c in frame_chunks(data, 10)]


class AssemblerTests(SynchronousTestCase):
    def test_whole_snapshot_after_last_chunk(self) -> None:
        data = bytes(range(95))
        assembler = Assembler()
        results = [assembler.receive(m) for m in _chunks(data)]
        self.assertEqual(results[:-1], [None] * 9)
        last = results[-1]
        assert last is not None
        self.assertEqual(last.data, data)
        self.assertEqual(last.meta.index, 9)
        self.assertEqual(assembler.pending(), 0)

    def test_empty_snapshot_is_one_chunk(self) -> None:
        result = Assembler().receive(_chunks(b"")[0])
        assert result is not None
        self.assertEqual(result.data, b"")

    def test_lost_chunk_aborts(self) -> None:
        chunks = _chunks(bytes(50))
        assembler = Assembler()
        del chunks[2]
        self.assertEqual([assembler.receive(m) for m in chunks], [None] * 4)

    def test_corrupt_data_is_refused(self) -> None:
        chunks = _chunks(bytes(30))
        last = chunks[-1]
        chunks[-1] = InstallSnapshot(last.src, last.dst, last.term, last.meta,
                                     last.data[:-1] + b"X")  # fmt: skip
        assembler = Assembler()
        self.assertEqual([assembler.receive(m) for m in chunks], [None] * 3)

    def test_new_leader_transfer_replaces_old(self) -> None:
        """A leader change mid-transfer: the old transfer's chunks no longer
        count; the new leader's transfer completes on its own."""
        old = _chunks(bytes(50), term=2, src="a")
        new = _chunks(bytes(range(40)), term=3, index=12, src="c")
        assembler = Assembler()
        for m in old[:2]:
            assembler.receive(m)
        for m in new[:-1]:
            self.assertIsNone(assembler.receive(m))
        done = assembler.receive(new[-1])
        assert done is not None
        self.assertEqual((done.term, done.meta.index, done.data), (3, 12, bytes(range(40))))
        for m in old[2:]:
            self.assertIsNone(assembler.receive(m))  # an older term's transfer is over
