"""Unit tests of the pure Raft core, driven message by message."""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from skydns.raft.core.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Configuration,
    Entry,
    EntryKind,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    RequestVote,
    RequestVoteResponse,
    SnapshotMeta,
    TimeoutNow,
)
from skydns.raft.core.progress import ProgressState
from skydns.raft.core.raft import NotLeader, ProposalDropped, RaftCore, Ready, RestoredState, Role
from skydns.raft.node.sessions import SessionTable, Stale

IDS = ["a", "b", "c"]


def make(node_id: str, ids: list[str] = IDS, seed: int = 0, **kw: object) -> RaftCore:
    restored = kw.pop("restored", RestoredState())
    assert isinstance(restored, RestoredState)
    return RaftCore(node_id, ids, restored, random.Random(seed), **kw)  # type: ignore[arg-type]


def drain(core: RaftCore) -> Ready:
    rd = core.ready()
    core.advance(rd)
    return rd


class Net:
    """Nodes and a perfect network: deliver every message until quiet."""

    def __init__(self, ids: list[str] = IDS, **kw: object) -> None:
        self.nodes = {i: make(i, ids, seed=n, **kw) for n, i in enumerate(ids)}
        self.cut: set[str] = set()
        self.applied: dict[str, list[Entry]] = {i: [] for i in ids}
        self.sent: list[Message] = []
        self.reads: dict[str, list[bytes]] = {i: [] for i in ids}

    def flush(self) -> None:
        queue: list[Message] = []
        while True:
            for i, core in self.nodes.items():
                if core.has_ready():
                    rd = drain(core)
                    self.applied[i].extend(rd.committed_entries)
                    self.reads[i].extend(s.context for s in rd.read_states)
                    queue.extend(rd.messages)
            if not queue:
                return
            m = queue.pop(0)
            self.sent.append(m)
            if m.src in self.cut or m.dst in self.cut:
                continue
            self.nodes[m.dst].step(m)

    def elect(self, node_id: str) -> RaftCore:
        self.nodes[node_id].campaign(prevote=True)
        self.flush()
        assert self.nodes[node_id].role is Role.LEADER
        return self.nodes[node_id]

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            for core in self.nodes.values():
                core.tick()
            self.flush()


class ElectionTests(SynchronousTestCase):
    def test_single_node_elects_itself(self) -> None:
        """A one-voter cluster campaigns after its timeout and commits at once."""
        core = make("a", ["a"])
        for _ in range(2 * core.election_tick):
            core.tick()
        self.assertIs(core.role, Role.LEADER)
        self.assertEqual(core.log.committed, 1)
        index = core.propose(b"x")
        self.assertEqual(core.log.committed, index)

    def test_election_timeout_is_randomized(self) -> None:
        """Timeouts differ between nodes and lie in [election_tick, 2*election_tick)."""
        seen = {make("a", seed=s).randomized_election_timeout for s in range(50)}
        self.assertGreater(len(seen), 3)
        self.assertTrue(all(10 <= t < 20 for t in seen))

    def test_leader_appends_noop_and_commits_it(self) -> None:
        """A new leader appends a no-op of its term and commits it on a majority."""
        net = Net()
        leader = net.elect("a")
        self.assertEqual(leader.log.entry(1).kind, EntryKind.NOOP)
        self.assertEqual(leader.log.entry(1).term, leader.term)
        for core in net.nodes.values():
            self.assertEqual(core.log.committed, 1)

    def test_one_vote_per_term(self) -> None:
        """A voter grants one vote per term, and only to the first asker."""
        core = make("a")
        core.step(RequestVote("b", "a", 1, 0, 0))
        core.step(RequestVote("c", "a", 1, 0, 0))
        rd = drain(core)
        granted = [m.granted for m in rd.messages if isinstance(m, RequestVoteResponse)]
        self.assertEqual(granted, [True, False])
        self.assertEqual(rd.hard_state, HardState(1, "b", 0))

    def test_vote_refused_to_stale_log(self) -> None:
        """Raft §5.4.1: no vote for a candidate whose log is behind ours."""
        core = make("a", restored=RestoredState(HardState(2), (Entry(1, 1), Entry(2, 2))))
        core.step(RequestVote("b", "a", 3, 5, 1))  # longer, but older last term
        core.step(RequestVote("c", "a", 3, 1, 2))  # same last term, shorter
        rd = drain(core)
        self.assertEqual([m.granted for m in rd.messages], [False, False])  # type: ignore[union-attr]
        self.assertIsNone(core.vote)

    def test_restart_keeps_vote(self) -> None:
        """A restarted node that voted in a term does not vote again in it."""
        core = make("a")
        core.step(RequestVote("b", "a", 1, 0, 0))
        rd = drain(core)
        assert rd.hard_state is not None
        again = make("a", restored=RestoredState(rd.hard_state))
        again.step(RequestVote("c", "a", 1, 0, 0))
        self.assertEqual([m.granted for m in drain(again).messages], [False])  # type: ignore[union-attr]

    def test_vote_response_in_same_ready_as_persisted_vote(self) -> None:
        """The Ready holding a vote grant also holds the hard state recording it."""
        core = make("a")
        core.step(RequestVote("b", "a", 1, 0, 0))
        rd = core.ready()
        self.assertTrue(rd.must_sync)
        self.assertEqual(rd.hard_state, HardState(1, "b", 0))
        core.advance(rd)
        self.assertFalse(core.has_ready())

    def test_prevote_keeps_terms(self) -> None:
        """A PreVote round that fails changes no node's term."""
        net = Net()
        net.cut = {"b", "c"}
        net.nodes["a"].campaign(prevote=True)
        net.flush()
        self.assertEqual([c.term for c in net.nodes.values()], [0, 0, 0])
        self.assertIs(net.nodes["a"].role, Role.PRE_CANDIDATE)

    def test_prevote_request_changes_no_term(self) -> None:
        """Granting a PreVote leaves the voter's term and vote as they were."""
        core = make("a", restored=RestoredState(HardState(3)))
        core.step(RequestVote("b", "a", 4, 0, 0, prevote=True))
        (m,) = drain(core).messages
        assert isinstance(m, RequestVoteResponse)
        self.assertEqual((m.granted, m.prevote, m.term), (True, True, 4))
        self.assertEqual((core.term, core.vote), (3, None))

    def test_vote_ignored_within_leader_lease(self) -> None:
        """A follower that heard from its leader ignores higher-term vote requests."""
        net = Net()
        leader = net.elect("a")
        term = leader.term
        b = net.nodes["b"]
        b.step(RequestVote("c", "b", term + 5, 100, term + 5))
        self.assertEqual(b.term, term)
        self.assertEqual(drain(b).messages, ())

    def test_transfer_vote_bypasses_lease(self) -> None:
        """A campaign started by TimeoutNow may depose the current leader."""
        net = Net()
        net.elect("a")
        b = net.nodes["b"]
        b.step(RequestVote("c", "b", b.term + 1, 1, b.term, transfer=True))
        self.assertEqual(b.vote, "c")


class CheckQuorumTests(SynchronousTestCase):
    def test_isolated_leader_steps_down_within_election_timeout(self) -> None:
        """CheckQuorum: a leader that hears from no quorum steps down in time."""
        net = Net()
        leader = net.elect("a")
        net.cut = {"a"}
        ticks = 0
        while leader.role is Role.LEADER and ticks < 3 * leader.election_tick:
            leader.tick()
            net.flush()
            ticks += 1
        self.assertIs(leader.role, Role.FOLLOWER)
        self.assertLessEqual(ticks, leader.election_tick + 1)

    def test_leader_steps_down_on_higher_term(self) -> None:
        """A leader that hears of a newer term becomes a follower of it."""
        net = Net()
        leader = net.elect("a")
        leader.step(AppendEntriesResponse("b", "a", leader.term + 1, False, 0))
        self.assertIs(leader.role, Role.FOLLOWER)
        self.assertEqual(leader.term, 2)
        self.assertIsNone(leader.vote)

    def test_stale_leader_told_of_new_term(self) -> None:
        """A follower answers a lower-term AppendEntries with its own term."""
        core = make("b", restored=RestoredState(HardState(5)))
        core.step(AppendEntries("a", "b", 3, 0, 0, (), 0))
        (m,) = drain(core).messages
        self.assertIsInstance(m, AppendEntriesResponse)
        self.assertEqual(m.term, 5)


class ReplicationTests(SynchronousTestCase):
    def test_replicates_and_commits(self) -> None:
        """A proposal reaches every node and is applied everywhere in order."""
        net = Net()
        leader = net.elect("a")
        for n in range(5):
            leader.propose(b"v%d" % n)
        net.flush()
        net.tick(2)
        for i in IDS:
            self.assertEqual([e.data for e in net.applied[i][1:]], [b"v%d" % n for n in range(5)])


    def test_propose_many_appends_in_order_in_one_message_per_follower(self) -> None:
        """Several commands proposed at once take consecutive indexes, go to
        each follower in a single AppendEntries, and are applied in order."""
        net = Net()
        leader = net.elect("a")
        net.flush()
        last = leader.log.last_index()
        first = leader.propose_many([b"w%d" % n for n in range(7)])
        self.assertEqual(first, last + 1)
        self.assertEqual(leader.log.last_index(), last + 7)
        appends = [m for m in leader.ready().messages if isinstance(m, AppendEntries)]
        self.assertEqual(sorted(m.dst for m in appends), ["b", "c"])
        for m in appends:
            self.assertEqual([e.data for e in m.entries], [b"w%d" % n for n in range(7)])
            self.assertEqual([e.index for e in m.entries], list(range(first, first + 7)))
        net.flush()
        net.tick(2)
        for i in IDS:
            self.assertEqual([e.data for e in net.applied[i] if e.data.startswith(b"w")],
                             [b"w%d" % n for n in range(7)], i)  # fmt: skip

    def test_propose_many_is_refused_like_propose(self) -> None:
        """Not the leader, or handing leadership over: nothing is appended."""
        net = Net()
        leader = net.elect("a")
        follower = net.nodes["b"]
        before = follower.log.last_index()
        self.assertRaises(NotLeader, follower.propose_many, [b"x", b"y"])
        self.assertEqual(follower.log.last_index(), before)
        self.assertRaises(ValueError, leader.propose_many, [])
        net.cut = {"b"}
        leader.transfer_leadership("b")
        before = leader.log.last_index()
        self.assertRaises(ProposalDropped, leader.propose_many, [b"x", b"y"])
        self.assertEqual(leader.log.last_index(), before)
    def test_rejects_mismatched_prev_term_with_hint(self) -> None:
        """A follower rejects AppendEntries whose prevLogTerm differs, with a hint."""
        log = tuple(Entry(t, i) for i, t in enumerate([1, 1, 2, 2, 2], start=1))
        core = make("b", restored=RestoredState(HardState(3), log))
        core.step(AppendEntries("a", "b", 3, 5, 3, (Entry(3, 6),), 0))
        (m,) = drain(core).messages
        assert isinstance(m, AppendEntriesResponse)
        self.assertFalse(m.success)
        self.assertEqual((m.index, m.hint_index, m.hint_term), (5, 5, 2))
        self.assertEqual(core.log.last_index(), 5)

    def test_divergent_follower_converges_in_few_round_trips(self) -> None:
        """The conflict hint skips back a term at a time, not an entry at a time."""
        ids = ["a", "b", "c"]
        lead_log = tuple(Entry(t, i) for i, t in enumerate([1] * 3 + [4] * 30, start=1))
        follower_log = tuple(Entry(t, i) for i, t in enumerate([1] * 3 + [2] * 40, start=1))
        net = Net(ids)
        net.nodes["a"] = make("a", ids, restored=RestoredState(HardState(4), lead_log))
        net.nodes["b"] = make("b", ids, restored=RestoredState(HardState(3), follower_log))
        net.nodes["c"] = make("c", ids, restored=RestoredState(HardState(4), lead_log))
        net.elect("a")
        net.tick(3)
        self.assertEqual(net.nodes["b"].log.entries, net.nodes["a"].log.entries)
        rejections = [m for m in net.sent if isinstance(m, AppendEntriesResponse) and not m.success]
        self.assertLessEqual(len(rejections), 3)

    def test_stale_append_does_not_truncate(self) -> None:
        """A delayed duplicate AppendEntries leaves newer entries in place."""
        core = make("b", restored=RestoredState(HardState(1)))
        core.step(AppendEntries("a", "b", 1, 0, 0, (Entry(1, 1), Entry(1, 2), Entry(1, 3)), 0))
        core.step(AppendEntries("a", "b", 1, 0, 0, (Entry(1, 1),), 0))
        self.assertEqual(core.log.last_index(), 3)
        oks = [m.index for m in drain(core).messages]  # type: ignore[union-attr]
        self.assertEqual(oks, [3, 1])

    def test_commit_limited_to_verified_entries(self) -> None:
        """A follower commits no further than the last entry the message verified."""
        log = (Entry(1, 1), Entry(1, 2), Entry(2, 3))
        core = make("b", restored=RestoredState(HardState(3), log))
        core.step(AppendEntries("a", "b", 3, 1, 1, (Entry(1, 2),), 3))
        self.assertEqual(core.log.committed, 2)

    def test_conflict_truncates_uncommitted_suffix(self) -> None:
        """Entries that conflict with the leader's are replaced from the conflict on."""
        log = (Entry(1, 1), Entry(1, 2), Entry(2, 3))
        core = make("b", restored=RestoredState(HardState(3), log))
        core.step(AppendEntries("a", "b", 3, 2, 1, (Entry(3, 3),), 0))
        self.assertEqual(core.log.entries, [Entry(1, 1), Entry(1, 2), Entry(3, 3)])
        self.assertEqual(drain(core).entries, (Entry(3, 3),))

    def test_old_term_entries_not_committed_by_counting(self) -> None:
        """Figure 8: a leader never commits an earlier term's entry by counting replicas."""
        ids = ["a", "b", "c"]
        log = (Entry(1, 1), Entry(2, 2))
        a = make("a", ids, restored=RestoredState(HardState(3, "a"), log))
        a.campaign(prevote=False)  # term 4
        a.step(RequestVoteResponse("b", "a", a.term, True))
        self.assertIs(a.role, Role.LEADER)
        # b holds index 2 (term 2) but not the leader's no-op at index 3.
        a.step(AppendEntriesResponse("b", "a", a.term, True, 2))
        self.assertEqual(a.log.committed, 0)
        a.step(AppendEntriesResponse("b", "a", a.term, True, 3))
        self.assertEqual(a.log.committed, 3)

    def test_batches_bounded_in_bytes(self) -> None:
        """No AppendEntries carries more than max_size_per_msg (beyond one entry)."""
        net = Net(max_size_per_msg=300, max_inflight=1000)
        leader = net.elect("a")
        for _ in range(20):
            leader.propose(b"x" * 100)
        net.flush()
        sizes = [len(m.entries) for m in net.sent if isinstance(m, AppendEntries)]
        self.assertTrue(sizes)
        self.assertLessEqual(max(sizes), 2)
        self.assertEqual(net.nodes["b"].log.last_index(), leader.log.last_index())

    def test_pipeline_window_bounds_inflight(self) -> None:
        """In replicate state at most max_inflight messages are unacknowledged."""
        leader = make("a", seed=1, max_inflight=2)
        leader.campaign(prevote=False)
        leader.step(RequestVoteResponse("b", "a", 1, True))
        leader.step(AppendEntriesResponse("b", "a", 1, True, 1))
        self.assertIs(leader.progress["b"].state, ProgressState.REPLICATE)
        drain(leader)
        for n in range(5):
            leader.propose(b"%d" % n)
        to_b = [m for m in drain(leader).messages if isinstance(m, AppendEntries) and m.dst == "b"]
        self.assertEqual(len(to_b), 2)
        leader.step(AppendEntriesResponse("b", "a", 1, True, to_b[0].entries[-1].index))
        more = [m for m in drain(leader).messages if isinstance(m, AppendEntries) and m.dst == "b"]
        self.assertEqual(len(more), 1)

    def test_probe_sends_one_message_until_answered(self) -> None:
        """A probed follower gets one AppendEntries until it answers."""
        leader = make("a", seed=1)
        leader.campaign(prevote=False)
        leader.step(RequestVoteResponse("b", "a", 1, True))
        drain(leader)
        leader.propose(b"1")
        leader.propose(b"2")
        to_c = [m for m in drain(leader).messages if isinstance(m, AppendEntries) and m.dst == "c"]
        self.assertEqual(to_c, [])  # the probe sent at election is unanswered


class LostEntriesTests(SynchronousTestCase):
    """A log that lost entries it acknowledged, which start-up did not
    detect (SPEC §11), is found out by the leader's capped commit index."""

    def test_heartbeat_beyond_the_log_starts_recovery(self) -> None:
        """A heartbeat whose commit index (capped by the leader at what this
        follower acknowledged) lies past its log makes it a recovering server
        that no longer votes, durably (the Ready says so)."""
        log = (Entry(1, 1), Entry(1, 2))
        core = make("b", restored=RestoredState(HardState(1, "a", 2), log))
        core.step(Heartbeat("a", "b", 1, 5, None))
        rd = drain(core)
        self.assertTrue(core.recovering)
        self.assertIn("log ends at 2", rd.lost or "")
        told = [m for m in rd.messages if isinstance(m, AppendEntriesResponse)]
        answers = [(m.success, m.recovering, m.hint_index) for m in told]
        self.assertEqual(answers, [(False, True, 2)])
        self.assertEqual(core.log.committed, 2)
        for _ in range(100):  # the leader falls silent: it never campaigns
            core.tick()
        self.assertFalse([m for m in drain(core).messages if isinstance(m, RequestVote)])
        core.step(RequestVote("c", "b", 9, 9, 1))
        votes = [m for m in drain(core).messages if isinstance(m, RequestVoteResponse)]
        self.assertEqual([v.granted for v in votes], [False])

    def test_heartbeat_within_the_log_is_no_loss(self) -> None:
        log = (Entry(1, 1), Entry(1, 2))
        core = make("b", restored=RestoredState(HardState(1, "a", 0), log))
        core.step(Heartbeat("a", "b", 1, 2, None))
        self.assertIsNone(drain(core).lost)
        self.assertFalse(core.recovering)

    def test_rejected_probe_at_match_is_not_resent_at_once(self) -> None:
        """A follower rejecting the entry it acknowledged gets no new probe
        until the next heartbeat, rather than the same one at wire speed."""
        leader = make("a", seed=1)
        leader.campaign(prevote=False)
        leader.step(RequestVoteResponse("b", "a", 1, True))
        drain(leader)
        leader.propose(b"1")
        leader.propose(b"2")
        leader.step(AppendEntriesResponse("b", "a", 1, True, 3))
        drain(leader)
        self.assertEqual(leader.progress["b"].match, 3)
        leader.propose(b"3")
        leader.propose(b"4")
        drain(leader)
        leader.step(AppendEntriesResponse("b", "a", 1, False, 4, 1, 1))
        to_b = [m for m in drain(leader).messages if isinstance(m, AppendEntries) and m.dst == "b"]
        self.assertEqual([m.prev_log_index for m in to_b], [3])  # probing from its match
        leader.step(AppendEntriesResponse("b", "a", 1, False, 3, 1, 1))
        to_b = [m for m in drain(leader).messages if isinstance(m, AppendEntries) and m.dst == "b"]
        self.assertEqual(to_b, [])


class SnapshotSeamTests(SynchronousTestCase):
    def test_log_may_start_after_a_snapshot(self) -> None:
        """A core restored from a snapshot answers for the snapshot's last entry."""
        snap = SnapshotMeta(5, 2, Configuration(frozenset(IDS)))
        core = make("a", restored=RestoredState(HardState(2, None, 5), (Entry(2, 6),), snap))
        self.assertEqual((core.log.first_index(), core.log.last_index()), (6, 6))
        self.assertEqual(core.log.term(5), 2)
        self.assertIsNone(core.log.term(4))
        self.assertEqual(core.log.applied, 5)

    def test_follower_behind_snapshot_gets_install_snapshot(self) -> None:
        """A follower needing compacted entries is sent an InstallSnapshot."""
        snap = SnapshotMeta(5, 2, Configuration(frozenset(IDS)))
        a = make("a", restored=RestoredState(HardState(2, None, 5), (Entry(2, 6),), snap))
        a.campaign(prevote=False)
        a.step(RequestVoteResponse("c", "a", a.term, True))
        drain(a)
        a.step(AppendEntriesResponse("b", "a", a.term, False, 6, 0, 0))
        (m,) = drain(a).messages
        assert isinstance(m, InstallSnapshot)
        self.assertEqual((m.dst, m.meta), ("b", snap))
        self.assertIs(a.progress["b"].state, ProgressState.SNAPSHOT)


class ReadIndexTests(SynchronousTestCase):
    def test_read_needs_quorum_heartbeat(self) -> None:
        """ReadIndex returns only after a quorum acknowledges a heartbeat round."""
        net = Net()
        leader = net.elect("a")
        drain(leader)
        leader.read_index(b"r1")
        rd = drain(leader)
        self.assertEqual(rd.read_states, ())
        beats = [m for m in rd.messages if isinstance(m, Heartbeat)]
        self.assertEqual({m.context for m in beats}, {b"r1"})
        leader.step(HeartbeatResponse("b", "a", leader.term, b"r1"))
        (state,) = drain(leader).read_states
        self.assertEqual((state.index, state.context), (leader.log.committed, b"r1"))

    def test_isolated_leader_read_never_returns(self) -> None:
        """A leader cut off from its quorum serves no read."""
        net = Net()
        leader = net.elect("a")
        net.cut = {"a"}
        leader.read_index(b"r")
        net.tick(30)
        self.assertEqual(drain(leader).read_states, ())

    def test_read_waits_for_commit_in_term(self) -> None:
        """A new leader holds reads until an entry of its term commits."""
        net = Net()
        a = net.nodes["a"]
        a.campaign(prevote=False)
        a.step(RequestVoteResponse("b", "a", a.term, True))
        a.read_index(b"r")
        self.assertEqual(len(a.read_only), 0)
        self.assertEqual(a.pending_reads, [(b"r", None)])

    def test_follower_forwards_read(self) -> None:
        """A follower's read goes through the leader and comes back as a ReadState."""
        net = Net()
        net.elect("a")
        b = net.nodes["b"]
        b.read_index(b"q")
        net.flush()
        self.assertEqual(net.reads["b"], [b"q"])
        self.assertEqual(net.reads["a"], [])

    def test_read_without_leader_raises(self) -> None:
        """A node that knows no leader refuses reads and proposals."""
        core = make("a")
        self.assertRaises(NotLeader, core.read_index, b"x")
        self.assertRaises(NotLeader, core.propose, b"x")


class TransferTests(SynchronousTestCase):
    def test_transfer_to_caught_up_follower(self) -> None:
        """TimeoutNow makes the target campaign and win at once."""
        net = Net()
        leader = net.elect("a")
        leader.transfer_leadership("b")
        net.flush()
        self.assertIs(net.nodes["b"].role, Role.LEADER)
        self.assertIs(leader.role, Role.FOLLOWER)
        self.assertTrue(any(isinstance(m, TimeoutNow) for m in net.sent))

    def test_proposals_dropped_during_transfer(self) -> None:
        """The leader takes no proposals while handing over."""
        net = Net()
        leader = net.elect("a")
        net.cut = {"b"}
        leader.transfer_leadership("b")
        self.assertRaises(ProposalDropped, leader.propose, b"x")

    def test_transfer_aborts_after_election_timeout(self) -> None:
        """A transfer that cannot finish is abandoned after an election timeout."""
        net = Net()
        leader = net.elect("a")
        net.cut = {"b"}
        leader.transfer_leadership("b")
        net.tick(leader.election_tick)
        self.assertIsNone(leader.lead_transferee)
        self.assertIs(leader.role, Role.LEADER)
        leader.propose(b"x")


class SessionTableTests(SynchronousTestCase):
    def test_retry_applies_once(self) -> None:
        """A retried request returns the cached result without running again."""
        table: SessionTable[int] = SessionTable()
        runs: list[int] = []

        def command() -> int:
            runs.append(1)
            return len(runs)

        self.assertEqual(table.apply("c", 1, command), 1)
        self.assertEqual(table.apply("c", 1, command), 1)
        self.assertEqual(table.apply("c", 2, command), 2)
        self.assertEqual(table.apply("c", 1, command), Stale("c", 1))
        self.assertEqual(len(runs), 2)

    def test_snapshot_restore(self) -> None:
        """A restored table still recognises requests seen before the snapshot."""
        table: SessionTable[str] = SessionTable()
        table.apply("c", 7, lambda: "ok")
        restored = SessionTable.restore(table.snapshot())
        self.assertEqual(restored.apply("c", 7, lambda: "again"), "ok")
        self.assertEqual(restored.last_seq("c"), 7)
