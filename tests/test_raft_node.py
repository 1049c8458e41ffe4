"""RaftNode: several nodes in one process over an in-memory network, on a
fake clock, with in-memory storage (the driver's behaviour one scenario at a
time; ``tests/raft/`` proves it under random faults)."""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from skydns.bodies import ValidationError
from skydns.cluster import ICluster, NotLeader
from skydns.commands import Register, Renew, Unregister, decode
from skydns.raft.core.messages import AppendEntries, Entry, EntryKind, HardState, TimeoutNow
from skydns.raft.net.interface import IRaftHandler, NotLeaderHere
from skydns.raft.node.envelope import unwrap
from skydns.raft.storage.errors import StorageFailure
from skydns.raft.storage.memory import MemoryStorage
from skydns.registry import Applied
from tests.raftnodes import Cluster, NodeUnderTest, service


class Maker:
    save_delay: float | None = None

    def make(self, ids: Sequence[str] = ("a", "b", "c")) -> Cluster:
        return Cluster(ids, save_delay=self.save_delay)


class ElectionTests(SynchronousTestCase, Maker):
    def test_provides_cluster_interface(self) -> None:
        cluster = self.make()
        verifyObject(ICluster, cluster.nodes["a"])
        verifyObject(IRaftHandler, cluster.nodes["a"].node.inbox)

    def test_one_leader_is_elected_and_known(self) -> None:
        """Three nodes elect one leader within a couple of election timeouts;
        every node knows it and reports ready."""
        cluster = self.make()
        self.assertFalse(any(n.is_ready() for n in cluster.nodes.values()))
        leader = cluster.elect(3.0)
        for node in cluster.nodes.values():
            self.assertEqual(node.status()["leader"], leader.id)
            self.assertTrue(node.is_ready())

    def test_status_describes_the_cluster(self) -> None:
        """GET /skydns/cluster's object: id, leader, term, indexes, members with roles."""
        cluster = self.make()
        leader = cluster.elect()
        status = cluster.follower().status()
        self.assertEqual(status["leader"], leader.id)
        self.assertGreaterEqual(status["term"], 1)
        self.assertEqual(status["commit_index"], status["applied_index"])
        roles = {m["id"]: m["role"] for m in status["members"]}
        self.assertEqual(roles[leader.id], "leader")
        self.assertEqual(sorted(roles.values()), ["follower", "follower", "leader"])
        self.assertEqual({m["address"] for m in status["members"]},
                         {"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"})  # fmt: skip

    def test_one_node_cluster_elects_itself_at_once(self) -> None:
        """The one-node default needs no election timeout."""
        cluster = self.make(["solo"])
        cluster.run(0.02)
        node = cluster.nodes["solo"]
        self.assertTrue(node.is_leader())
        self.assertTrue(node.is_ready())
        d = node.propose(Register(service("u1"), 0.0))
        cluster.run(0.02)
        self.assertEqual(self.successResultOf(d).status, "ok")


def held_saves(cluster: Cluster, node: NodeUnderTest) -> list[Deferred[None]]:
    """Make ``node`` save to its storage at once but finish each save only
    when the test fires the Deferred it appends to the list returned."""
    pending: list[Deferred[None]] = []
    storage = cluster.storages[node.id]

    def save(hs: HardState | None, entries: Sequence[Entry]) -> Deferred[None]:
        storage.save(hs, entries)
        pending.append(Deferred())
        return pending[-1]

    node.node.in_thread = lambda call, *args: save(*args)
    return pending


class ReplicationTests(SynchronousTestCase, Maker):
    def setUp(self) -> None:
        self.cluster = self.make()
        self.leader = self.cluster.elect()

    def test_leader_proposal_applies_everywhere(self) -> None:
        """A write on the leader fires once applied, and every replica applies it."""
        d = self.leader.propose(Register(service("u1"), 0.0))
        self.assertNoResult(d)
        self.cluster.run(0.1)
        self.assertEqual(self.successResultOf(d).status, "ok")
        for node in self.cluster.nodes.values():
            self.assertIsNotNone(node.registry.get("u1", 1.0), node.id)

    def test_follower_write_is_forwarded_and_read_your_writes(self) -> None:
        """A follower forwards to the leader and answers only after applying
        the entry itself: its own registry has the write when it answers."""
        follower = self.cluster.follower()
        d = follower.propose(Register(service("u2"), 0.0))
        seen: list[bool] = []

        def check(result: Applied) -> Applied:
            seen.append(follower.registry.get("u2", 1.0) is not None)
            return result

        d.addCallback(check)
        self.cluster.run(0.1)
        self.assertEqual(self.successResultOf(d).status, "ok")
        self.assertEqual(seen, [True])
        conflict = follower.propose(Register(service("u2"), 0.5))
        self.cluster.run(0.1)
        self.assertEqual(self.successResultOf(conflict).status, "conflict")

    def test_group_commit(self) -> None:
        """Proposals made in the same reactor turn share one save (one fsync)."""
        storage = self.cluster.storages[self.leader.id]
        before = storage.saves
        sent = len(self.cluster.network.sent)
        ds = [self.leader.propose(Register(service(f"g{i}"), 0.0)) for i in range(50)]
        self.cluster.clock.advance(0)
        self.assertEqual(storage.saves - before, 1)
        self.cluster.run(0.01)
        appends = [m for m in self.cluster.network.sent[sent:]
                   if isinstance(m, AppendEntries) and m.src == self.leader.id]
        self.assertEqual(sorted(len(m.entries) for m in appends[:2]), [50, 50],
                         "one AppendEntries per follower carries the whole batch")  # fmt: skip
        self.cluster.run(0.1)
        self.assertEqual([self.successResultOf(d).status for d in ds], ["ok"] * 50)

    def test_commit_only_changes_are_not_synced(self) -> None:
        """Learning a new commit index costs no save of its own on a follower."""
        follower = self.cluster.follower()
        storage = self.cluster.storages[follower.id]
        before = storage.saves
        self.leader.propose(Register(service("c1"), 0.0))
        self.cluster.run(1.0)
        self.assertEqual(storage.saves - before, 1)
        self.assertIsNotNone(follower.registry.get("c1", 1.0))

    def test_listeners_live_only_on_the_leader(self) -> None:
        """Apply listeners run on every node; ``live`` is true only on the leader."""
        self.leader.propose(Register(service("u3"), 0.0))
        self.cluster.run(0.1)
        for node_id, applied in self.cluster.applied.items():
            lives = [live for command, _, live in applied if isinstance(command, Register)]
            self.assertEqual(lives, [node_id == self.leader.id], node_id)

    def test_read_barrier(self) -> None:
        """read_barrier fires on a follower (ReadIndex through the leader) and
        on the leader, after the replica reflects earlier writes."""
        follower = self.cluster.follower()
        self.leader.propose(Register(service("r1"), 0.0))
        d = follower.read_barrier()
        self.assertNoResult(d)
        self.cluster.run(0.3)
        self.successResultOf(d)
        self.assertIsNotNone(follower.registry.get("r1", 1.0))
        d = self.leader.read_barrier()
        self.cluster.run(0.3)
        self.successResultOf(d)

    def test_read_barrier_without_a_leader_fails(self) -> None:
        """A read on a node cut off from the leader fails with NotLeader in time."""
        follower = self.cluster.follower()
        self.cluster.network.isolate(follower.id, self.cluster.ids)
        self.cluster.run(3.0)
        d = follower.read_barrier()
        self.cluster.run(9.0)
        self.failureResultOf(d, NotLeader)

    def test_exactly_once_when_the_forward_answer_is_lost(self) -> None:
        """The leader appends a forwarded proposal but its answer is lost: the
        follower retries, the log holds it twice, it is applied once."""
        follower = self.cluster.follower()
        self.cluster.network.lose_forward_answers = 1
        # Hold back replication to the follower so that it retries before it
        # could apply the first copy.
        self.cluster.network.blocked.add((self.leader.id, follower.id))
        d = follower.propose(Register(service("once"), 0.0))
        self.cluster.run(0.3)
        self.assertNoResult(d)
        self.cluster.network.blocked.clear()
        self.cluster.run(0.5)
        self.assertEqual(self.successResultOf(d).status, "ok")
        copies = [e for e in self.leader.core.log.entries
                  if e.kind is EntryKind.NORMAL and b'"once"' in unwrap(e.data).payload]
        self.assertEqual(len(copies), 2)
        for node_id, applied in self.cluster.applied.items():
            registers = [c for c, a, _ in applied if isinstance(c, Register)]
            self.assertEqual(len(registers), 1, node_id)

    def test_too_large(self) -> None:
        """A command over the size limit is refused (the API answers 400)."""
        huge = Register(service("big", host="h" * 70_000), 0.0)
        self.failureResultOf(self.leader.propose(huge), ValidationError)

    def test_forward_to_a_follower_is_refused(self) -> None:
        follower = self.cluster.follower()
        refused = self.failureResultOf(follower.inbox.accept_proposal(b"x"), NotLeaderHere)
        self.assertEqual(refused.value.leader, self.leader.id)

    def test_garbage_proposal_is_refused(self) -> None:
        from skydns.raft.net.interface import BadProposal

        self.failureResultOf(self.leader.inbox.accept_proposal(b"\x00\x05ab"), BadProposal)

    def test_foreign_messages_are_dropped(self) -> None:
        """A message from outside the cluster, or for someone else, changes nothing."""
        term = self.leader.core.term
        self.leader.inbox.receive(TimeoutNow("stranger", self.leader.id, term + 5))
        follower = self.cluster.follower()
        follower.inbox.receive(TimeoutNow(self.leader.id, "other", term + 5))
        self.cluster.run(0.2)
        self.assertEqual(self.leader.core.term, term)
        self.assertTrue(self.leader.is_leader())


class FailoverTests(SynchronousTestCase, Maker):
    def test_leader_crash_and_restart(self) -> None:
        """Kill the leader: another takes over within seconds and takes writes;
        the old one restarts from its storage, replays and catches up."""
        cluster = self.make()
        old = cluster.elect()
        for i in range(5):
            cluster.nodes[cluster.follower().id].propose(Register(service(f"k{i}"), 0.0))
        cluster.run(0.2)
        old.propose(Register(service("k5"), 0.0))  # its save carries the commit of k0..k4
        cluster.run(0.2)
        cluster.crash(old.id)
        survivor = next(iter(cluster.nodes.values()))
        pending = survivor.propose(Register(service("during"), 0.0))
        cluster.run(2.5)
        new = cluster.leader()
        assert new is not None
        self.assertNotEqual(new.id, old.id)
        self.assertEqual(self.successResultOf(pending).status, "ok")
        stored_commit = cluster.storages[old.id].load().hard_state.commit
        restarted = cluster.start(old.id)
        self.assertGreater(stored_commit, 1)
        self.assertEqual(restarted.applied_index, stored_commit, "replayed from disk at once")
        self.assertFalse(restarted.is_ready())
        cluster.run(1.0)
        for i in range(5):
            self.assertIsNotNone(restarted.registry.get(f"k{i}", 1.0))
        self.assertIsNotNone(restarted.registry.get("during", 1.0), "caught up")
        self.assertTrue(restarted.is_ready())
        self.assertFalse(any(live for _, _, live in cluster.applied[old.id]))

    def test_pending_write_survives_leader_change(self) -> None:
        """A write waiting on a follower when the leader dies is resubmitted to
        the next leader and answered."""
        cluster = self.make()
        old = cluster.elect()
        follower = cluster.follower()
        cluster.network.isolate(old.id, cluster.ids)
        d = follower.propose(Register(service("moved"), 0.0))
        cluster.run(4.0)
        self.assertEqual(self.successResultOf(d).status, "ok")
        cluster.network.heal()
        cluster.run(1.0)
        self.assertIsNotNone(old.registry.get("moved", 1.0))

    def test_no_quorum_no_ack(self) -> None:
        """With the followers gone, a leader's write is not acknowledged."""
        cluster = self.make()
        leader = cluster.elect()
        cluster.network.isolate(leader.id, cluster.ids)
        d = leader.propose(Register(service("alone"), 0.0))
        cluster.run(9.0)
        failure = self.failureResultOf(d)
        self.assertTrue(failure.check(NotLeader, TimeoutError))

    def test_write_fails_at_its_deadline_not_before(self) -> None:
        """A write that cannot reach a leader waits out the proposal timeout
        (8 s, within a tick) and then fails; the ones made later fail later."""
        cluster = self.make()
        cluster.elect()
        follower = cluster.follower()
        cluster.network.isolate(follower.id, cluster.ids)
        early = follower.propose(Register(service("early"), 0.0))
        cluster.run(1.0)
        late = follower.propose(Register(service("late"), 0.0))
        cluster.run(6.9)
        self.assertNoResult(early)
        cluster.run(0.2)
        self.assertTrue(self.failureResultOf(early).check(NotLeader, TimeoutError))
        self.assertNoResult(late)
        cluster.run(1.0)
        self.assertTrue(self.failureResultOf(late).check(NotLeader, TimeoutError))

    def test_whole_cluster_restart(self) -> None:
        """Kill every node and restart them all: the registry is intact."""
        cluster = self.make()
        leader = cluster.elect()
        for i in range(3):
            leader.propose(Register(service(f"w{i}"), 0.0))
        leader.propose(Unregister("w1", 0.0))
        cluster.run(0.5)
        for node_id in list(cluster.nodes):
            cluster.crash(node_id)
        for node_id in cluster.ids:
            cluster.start(node_id)
        cluster.elect()
        for node in cluster.nodes.values():
            self.assertIsNotNone(node.registry.get("w0", 1.0))
            self.assertIsNone(node.registry.get("w1", 1.0))
        live = [live for log in cluster.applied.values() for _, _, live in log]
        self.assertFalse(any(live), "nothing is live on replay")

    def test_one_node_restart(self) -> None:
        """A one-node cluster's writes survive a crash and restart."""
        cluster = self.make(["solo"])
        cluster.run(0.02)
        node = cluster.nodes["solo"]
        node.propose(Register(service("s1"), 0.0))
        node.propose(Renew("s1", 60, 1.0))
        cluster.run(0.02)
        cluster.crash("solo")
        node = cluster.start("solo")
        self.assertEqual(node.registry.get("s1", 2.0).expires, 61.0)  # type: ignore[union-attr]


class UndetectedLossTests(SynchronousTestCase, Maker):
    def test_follower_that_lost_acknowledged_entries_recovers(self) -> None:
        """A follower whose storage silently lost entries it acknowledged
        (start-up cannot see every loss) learns it from the leader's capped
        commit index: it records that it is recovering (so a restart does not
        make it vote either), says why it is not ready, and is restored."""
        cluster = self.make()
        leader = cluster.elect()
        for n in range(5):
            leader.propose(Register(service(f"s{n}"), 0.0))
        cluster.run(0.5)
        follower = cluster.follower()
        storage = cluster.storages[follower.id]
        cluster.crash(follower.id)
        storage._state.truncate(3)
        began: list[str] = []
        begin = storage.begin_recovery
        storage.begin_recovery = lambda reason: (began.append(reason), begin(reason))[1]  # type: ignore[method-assign]
        node = cluster.start(follower.id)
        cluster.run(0.05)
        self.assertEqual(len(began), 1, began)
        self.assertIn("log ends at 2", began[0])
        cluster.run(1.0)
        self.assertIsNone(storage.recovering)
        self.assertTrue(node.is_ready())
        self.assertIsNotNone(node.registry.get("s4", 1.0))
        self.flushLoggedErrors()


class FailStopTests(SynchronousTestCase, Maker):
    def test_storage_failure_stops_the_node(self) -> None:
        """A failed save stops the node: nothing acknowledged, nothing sent
        after it, and the process is told to stop."""
        cluster = self.make()
        leader = cluster.elect()
        cluster.storages[leader.id].broken = True  # type: ignore[attr-defined]
        sent_before = len(cluster.network.sent)
        d = leader.propose(Register(service("lost"), 0.0))
        cluster.clock.advance(0)
        self.failureResultOf(d, NotLeader)
        self.assertEqual(cluster.stopped, [leader.id and "fdatasync failed: EIO"])
        self.assertFalse(leader.is_leader())
        self.assertFalse(leader.is_ready())
        later = [m for m in cluster.network.sent[sent_before:] if m.src == leader.id]
        if self.save_delay is not None:
            # Replicating before the leader's own save is done is allowed
            # (it acknowledges nothing); anything else is not.
            later = [m for m in later if not isinstance(m, AppendEntries)]
        self.assertEqual(later, [])
        self.failureResultOf(leader.propose(Register(service("x"), 0.0)), NotLeader)
        self.flushLoggedErrors()


class MetricsTests(SynchronousTestCase, Maker):
    def test_raft_gauges(self) -> None:
        cluster = self.make()
        leader = cluster.elect()
        assert leader.metrics is not None
        text = leader.metrics.render()[0].decode()
        self.assertIn('skydns_raft_role{role="leader"} 1.0', text)
        self.assertIn(f"skydns_raft_term {float(leader.core.term)}", text)
        self.assertIn("skydns_raft_leader_changes_total 1.0", text)




class ThreadedSaveTests(SynchronousTestCase):
    """With saves off the reactor thread, nothing is sent or applied before
    its save completes, and what arrives meanwhile joins the next batch."""

    def test_inputs_wait_for_the_save(self) -> None:
        saves: list[tuple[HardState | None, tuple[Entry, ...], Deferred[None]]] = []
        cluster = Cluster(["solo"])
        node = cluster.nodes["solo"]
        cluster.clock.advance(0)
        storage = cluster.storages["solo"]

        def save(hs: HardState | None, entries: Sequence[Entry]) -> Deferred[None]:
            d: Deferred[None] = Deferred()
            saves.append((hs, tuple(entries), d))
            return d

        node.node.in_thread = lambda call, *args: save(*args)
        first = node.propose(Register(service("t1"), 0.0))
        cluster.clock.advance(0)
        self.assertEqual(len(saves), 1)
        later = [node.propose(Register(service(f"t{i}"), 0.0)) for i in range(2, 6)]
        cluster.clock.advance(1.0)  # ticks, too, wait
        self.assertEqual(len(saves), 1, "no second save while one runs")
        self.assertNoResult(first)
        self.assertIsNone(node.registry.get("t1", 0.5), "nothing applied before its save")
        hs, entries, d = saves[0]
        storage.save(hs, entries)
        d.callback(None)
        self.assertEqual(self.successResultOf(first).status, "ok")
        self.assertEqual(len(saves), 2)
        self.assertEqual(len(saves[1][1]), 4, "the four waiting proposals share one save")
        hs, entries, d = saves[1]
        storage.save(hs, entries)
        d.callback(None)
        self.assertEqual([self.successResultOf(p).status for p in later], ["ok"] * 4)

    def test_leader_replicates_while_it_saves_but_acks_after(self) -> None:
        """The leader sends AppendEntries before its own save completes, but a
        write is acknowledged only after that save, whatever the followers say."""
        cluster = Cluster(save_delay=0.004)
        leader = cluster.elect()
        pending = held_saves(cluster, leader)
        sent = len(cluster.network.sent)
        d = leader.propose(Register(service("e1"), 0.0))
        cluster.clock.advance(0)
        self.assertEqual(len(pending), 1)
        early = [m for m in cluster.network.sent[sent:]
                 if isinstance(m, AppendEntries) and m.entries]  # fmt: skip
        self.assertEqual(len(early), 2, "sent to both followers before the save is done")
        cluster.run(0.2)
        follower = cluster.follower()
        self.assertEqual(follower.core.log.last_index(), leader.core.log.last_index())
        self.assertNoResult(d)
        pending[0].callback(None)
        cluster.run(0.05)
        self.assertEqual(self.successResultOf(d).status, "ok")

    def test_proposals_during_a_save_go_out_together_after_it(self) -> None:
        """Writes that arrive while the leader's save is under way are
        appended as one batch once it is done: one save and one AppendEntries
        per follower for all of them, acknowledged in the order they came."""
        cluster = Cluster(save_delay=0.004)
        leader = cluster.elect()
        pending = held_saves(cluster, leader)
        first = leader.propose(Register(service("s0"), 0.0))
        cluster.clock.advance(0)
        self.assertEqual(len(pending), 1)
        last = leader.core.log.last_index()
        ds = [leader.propose(Register(service(f"s{i}"), 0.0)) for i in range(1, 21)]
        cluster.clock.advance(0)
        self.assertEqual(leader.core.log.last_index(), last, "nothing appended during the save")
        sent = len(cluster.network.sent)
        pending[0].callback(None)
        self.assertEqual(len(pending), 2, "one save for the 20 that waited")
        batch = [m for m in cluster.network.sent[sent:]
                 if isinstance(m, AppendEntries) and m.src == leader.id and m.entries]  # fmt: skip
        self.assertEqual([len(m.entries) for m in batch], [20, 20])
        commands = [decode(unwrap(e.data).payload) for e in batch[0].entries]
        self.assertEqual([c.service.uuid for c in commands if isinstance(c, Register)],
                         [f"s{i}" for i in range(1, 21)])  # fmt: skip
        order: list[str] = []
        for i, d in enumerate(ds, 1):
            d.addCallback(lambda _, i=i: order.append(f"s{i}"))
        for _ in range(5):
            for d in pending:
                if not d.called:
                    d.callback(None)
            cluster.run(0.05)
        self.assertEqual(self.successResultOf(first).status, "ok")
        self.assertEqual(order, [f"s{i}" for i in range(1, 21)])

    def test_new_term_is_durable_before_anything_is_sent(self) -> None:
        """A node that just won an election (new term and vote to save) sends
        nothing until that save is done."""
        cluster = Cluster(["a", "b", "c"], save_delay=0.004)
        held: list[tuple[str, Deferred[None]]] = []
        for node_id, node in cluster.nodes.items():
            storage = cluster.storages[node_id]

            def save(hs: HardState | None, entries: Sequence[Entry], node_id: str = node_id,
                     storage: MemoryStorage = storage) -> Deferred[None]:  # fmt: skip
                storage.save(hs, entries)
                d: Deferred[None] = Deferred()
                held.append((node_id, d))
                return d

            node.node.in_thread = lambda call, *args: save(*args)
        cluster.run(3.0)  # elections start, but every save is held
        from skydns.raft.core.messages import RequestVote, RequestVoteResponse

        prevotes = [m for m in cluster.network.sent if isinstance(m, RequestVote) and m.prevote]
        self.assertTrue(prevotes, "PreVote changes no term: it needs no save")
        after_save = [m for m in cluster.network.sent
                      if not (isinstance(m, (RequestVote, RequestVoteResponse)) and m.prevote)]
        self.assertEqual(after_save, [], "no vote request before the vote is durable")
        self.assertTrue(held)

    def test_stop_waits_for_the_save_under_way(self) -> None:
        """Stopping never closes the storage under a save running in a thread."""
        cluster = Cluster(["solo"])
        node = cluster.nodes["solo"]
        cluster.clock.advance(0)
        pending: list[Deferred[None]] = []

        def save(hs: HardState | None, entries: Sequence[Entry]) -> Deferred[None]:
            pending.append(Deferred())
            return pending[-1]

        node.node.in_thread = lambda call, *args: save(*args)
        proposal = node.propose(Register(service("t1"), 0.0))
        cluster.clock.advance(0)
        closed: list[bool] = []
        cluster.storages["solo"].close = lambda: closed.append(True)  # type: ignore[method-assign]
        stopped = node.stopService()
        self.failureResultOf(proposal, NotLeader)
        self.assertNoResult(stopped)
        self.assertEqual(closed, [])
        pending[0].callback(None)
        self.successResultOf(stopped)
        self.assertEqual(closed, [True])

    def test_failed_threaded_save_stops_the_node(self) -> None:
        cluster = Cluster(["solo"])
        node = cluster.nodes["solo"]
        cluster.clock.advance(0)
        node.node.in_thread = lambda call, *args: fail(StorageFailure("EIO"))
        d = node.propose(Register(service("t1"), 0.0))
        cluster.clock.advance(0)
        self.failureResultOf(d, NotLeader)
        self.assertEqual(cluster.stopped, ["EIO"])
        self.flushLoggedErrors()


class DelayedSaveElectionTests(ElectionTests):
    save_delay = 0.004


class DelayedSaveReplicationTests(ReplicationTests):
    save_delay = 0.004


class DelayedSaveFailoverTests(FailoverTests):
    save_delay = 0.004


class DelayedSaveFailStopTests(FailStopTests):
    save_delay = 0.004


class ReadinessTests(SynchronousTestCase):
    def test_ready_only_after_the_leaders_commit_of_its_term(self) -> None:
        """A follower that has only heard a heartbeat (whose commit index is
        capped) is not ready; it is once an AppendEntries shows the leader's
        commit index at an entry of its term and it has applied that far."""
        from skydns.raft.core.messages import AppendEntries, Heartbeat

        cluster = Cluster(["a", "b", "c"])
        node = cluster.nodes["b"]
        cluster.network.handlers.clear()  # only what this test sends arrives
        node.inbox.receive(Heartbeat("a", "b", 1, 0))
        cluster.clock.advance(0)
        self.assertEqual(node.status()["leader"], "a")
        self.assertFalse(node.is_ready())
        noop = Entry(1, 1, EntryKind.NOOP)
        node.inbox.receive(AppendEntries("a", "b", 1, 0, 0, (noop,), 0))
        cluster.clock.advance(0)
        self.assertFalse(node.is_ready(), "the leader has not committed its entry yet")
        node.inbox.receive(AppendEntries("a", "b", 1, 1, 1, (), 1))
        cluster.clock.advance(0)
        self.assertTrue(node.is_ready())
        self.assertEqual(node.applied_index, 1)
