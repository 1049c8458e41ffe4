"""The pure core's membership changes: learners, promotion, removal."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from skydns.raft.core.messages import Configuration, RequestVote, TimeoutNow
from skydns.raft.core.raft import ConfigChangeRefused, NotLeader, RaftCore, Role
from tests.raft.test_core import Net, make


def conf(voters: str, learners: str = "") -> Configuration:
    return Configuration(frozenset(voters), frozenset(learners))


def add_fresh(net: Net, *ids: str) -> None:
    for node_id in ids:
        net.nodes[node_id] = make(node_id, [], seed=9)  # a fresh node knows no members
        net.applied[node_id] = []
        net.reads[node_id] = []


def with_learner() -> tuple[Net, RaftCore]:
    net = Net()
    leader = net.elect("a")
    add_fresh(net, "d")
    leader.change_config(conf("abc", "d"))
    net.flush()
    return net, leader


class MembershipCoreTests(SynchronousTestCase):
    def test_fresh_node_never_campaigns(self) -> None:
        core = make("d", [])
        for _ in range(100):
            core.tick()
        self.assertIs(core.role, Role.FOLLOWER)
        self.assertFalse(core.ready().messages)

    def test_learner_receives_the_log_but_does_not_vote(self) -> None:
        net, leader = with_learner()
        d = net.nodes["d"]
        self.assertEqual(d.config, conf("abc", "d"))
        self.assertEqual(d.log.last_index(), leader.log.last_index())
        self.assertEqual(d.log.committed, leader.log.committed)
        self.assertEqual(leader.progress["d"].match, leader.log.last_index())
        for _ in range(100):
            d.tick()  # no leader heard from: still no campaign
        self.assertFalse(any(isinstance(m, RequestVote) for m in d.ready().messages))
        # Its acknowledgements do not count towards commitment.
        net.cut.update("bc")
        leader.propose(b"x")
        net.flush()
        self.assertEqual(d.log.last_index(), leader.log.last_index())
        self.assertLess(leader.log.committed, leader.log.last_index())

    def test_config_takes_effect_when_appended(self) -> None:
        net = Net()
        leader = net.elect("a")
        net.cut.update("bc")
        leader.change_config(conf("ab"))
        self.assertEqual(leader.config, conf("ab"))
        self.assertTrue(leader.config_pending())
        self.assertNotIn("c", leader.progress)

    def test_promote_learner_to_voter(self) -> None:
        net, leader = with_learner()
        leader.change_config(conf("abcd"))
        net.flush()
        self.assertEqual(net.nodes["d"].config, conf("abcd"))
        self.assertEqual(leader.quorum(), 3)
        net.cut.update("bc")
        leader.propose(b"x")
        net.flush()
        self.assertLess(leader.log.committed, leader.log.last_index())  # a + d is not 3
        net.cut.clear()
        leader.tick()
        net.flush()
        self.assertEqual(leader.log.committed, leader.log.last_index())

    def test_one_change_at_a_time(self) -> None:
        net = Net()
        leader = net.elect("a")
        add_fresh(net, "d", "e")
        net.cut.update("bc")
        leader.change_config(conf("abc", "d"))
        with self.assertRaises(ConfigChangeRefused):
            leader.change_config(conf("abc", "de"))
        net.cut.clear()
        leader.tick()
        net.flush()
        leader.change_config(conf("abc", "de"))

    def test_refused_before_an_entry_of_the_term_commits(self) -> None:
        net = Net()
        net.cut.update("bc")
        a = net.nodes["a"]
        a.campaign(prevote=False)
        net.cut.clear()
        for m in a.ready().messages:
            if isinstance(m, RequestVote):
                net.nodes[m.dst].step(m)
        for node_id in "bc":
            rd = net.nodes[node_id].ready()
            net.nodes[node_id].advance(rd)
            for m in rd.messages:
                a.step(m)
        self.assertIs(a.role, Role.LEADER)
        with self.assertRaises(ConfigChangeRefused):
            a.change_config(conf("abc", "d"))

    def test_two_voters_at_once_refused(self) -> None:
        net = Net()
        leader = net.elect("a")
        with self.assertRaises(ConfigChangeRefused):
            leader.change_config(conf("abcde"))
        with self.assertRaises(ConfigChangeRefused):
            leader.change_config(conf("a"))
        with self.assertRaises(NotLeader):
            net.nodes["b"].change_config(conf("ab"))

    def test_remove_follower(self) -> None:
        net = Net()
        leader = net.elect("a")
        leader.change_config(conf("ab"))
        net.flush()
        self.assertEqual(net.nodes["b"].config, conf("ab"))
        net.cut.add("c")
        leader.propose(b"x")
        net.flush()
        self.assertEqual(leader.log.committed, leader.log.last_index())  # 2 of {a, b}
        net.cut.clear()
        leader.tick()
        net.flush()
        self.assertLess(net.nodes["c"].log.last_index(), leader.log.last_index())

    def test_remove_leader_hands_over(self) -> None:
        """The leader removes itself; once that commits it sends TimeoutNow to
        a caught-up voter and steps down; one of the others leads."""
        net = Net()
        leader = net.elect("a")
        leader.change_config(conf("bc"))
        sent = len(net.sent)
        net.flush()
        self.assertIs(leader.role, Role.FOLLOWER)
        self.assertTrue(any(isinstance(m, TimeoutNow) for m in net.sent[sent:]))
        new = [n for n in "bc" if net.nodes[n].role is Role.LEADER]
        self.assertEqual(len(new), 1)
        for _ in range(100):
            leader.tick()
        self.assertIs(leader.role, Role.FOLLOWER)
        self.assertFalse(any(isinstance(m, RequestVote) for m in leader.ready().messages))
