"""Scripted scenarios on pure cores, one message at a time: the paper's
Figure 8 (both endings), a deposed leader's late message, reads across a
leader change, and a voter that restarts mid-election."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from skydns.raft.core.messages import (
    AppendEntries,
    Heartbeat,
    HeartbeatResponse,
    Message,
    RequestVoteResponse,
)
from skydns.raft.core.ready import Role
from tests.raft.script import Scripted, command


def _term_at(c: Scripted, node_id: str, index: int) -> int | None:
    core = c.nodes[node_id].core
    return None if core is None else core.log.term(index)


def _carries(m: Message, index: int) -> bool:
    return isinstance(m, AppendEntries) and any(e.index == index for e in m.entries)


class Figure8Tests(SynchronousTestCase):
    def figure8(self, survive: bool) -> None:
        ids = ["s1", "s2", "s3", "s4", "s5"]
        c = Scripted(ids, max_size_per_msg=1, check_quorum=False)
        c.elect("s1", {"s2", "s3"})
        c.deliver()  # the no-op at index 1 commits everywhere
        c.do("s1", lambda core: core.tick())
        c.deliver()
        self.assertTrue(all(c.core(i).log.committed == 1 for i in ids))
        c.do("s1", lambda core: core.propose(command("write", "x", "A")))  # index 2, nowhere
        c.deliver(lambda m: False)
        c.crash("s1")
        c.elect("s5", {"s3", "s4"})  # index 2 of s5's term: its no-op
        c.deliver(lambda m: False)
        c.crash("s5")
        c.restart("s1")
        s1 = c.elect("s1", {"s2", "s3"})
        # s1 carries index 2 (its old term) to s2 and s3, but not yet its no-op.
        c.do("s1", lambda core: core.tick())
        c.deliver(lambda m: "s4" not in (m.src, m.dst)
                  and not (_carries(m, 3) and _term_at(c, m.dst, 2) == 1))  # fmt: skip
        self.assertEqual([c.core(i).log.term(2) for i in ("s1", "s2", "s3")], [1, 1, 1])
        self.assertEqual(s1.log.committed, 1, "an old-term entry was committed by counting")
        if survive:
            # (e): its no-op reaches a majority: index 2 commits with it and stays.
            c.do("s1", lambda core: core.tick())
            c.deliver(lambda m: "s4" not in (m.src, m.dst))
            self.assertEqual(s1.log.committed, 3)
            c.crash("s1")
            c.restart("s5")
            c.do("s5", lambda core: core.campaign(prevote=False))
            c.deliver(lambda m: "s1" not in (m.src, m.dst))
            self.assertIsNot(c.core("s5").role, Role.LEADER)
            c.restart("s1")
            c.do("s1", lambda core: core.campaign(prevote=False))
            for _ in range(3):
                c.deliver()
                for i in ids:
                    c.do(i, lambda core: core.tick())
            c.deliver()
        else:
            # (d): s1 crashes; s5 wins and overwrites index 2 everywhere.
            c.crash("s1")
            c.restart("s5")
            c.elect("s5", {"s2", "s3", "s4"})
            c.do("s5", lambda core: core.tick())
            c.deliver()
            c.restart("s1")
            for _ in range(3):
                c.do("s5", lambda core: core.tick())
                c.deliver()
            self.assertEqual(c.core("s1").log.term(2), 2)
        self.assertEqual(len({c.core(i).log.term(2) for i in ids}), 1)

    def test_old_term_entry_overwritten(self) -> None:
        """Figure 8 (d): an old-term entry on a majority was never committed,
        and a newer leader may overwrite it."""
        self.figure8(survive=False)

    def test_old_term_entry_commits_with_the_new_term(self) -> None:
        """Figure 8 (e): it commits once an entry of the leader's term does."""
        self.figure8(survive=True)


class LateMessageTests(SynchronousTestCase):
    def test_stale_leader_append_changes_nothing(self) -> None:
        """An AppendEntries from a deposed leader arrives late; it must not
        replace entries the new leader has already replicated (and committed)."""
        c = Scripted(["s1", "s2", "s3"], check_quorum=False)
        c.elect("s1", {"s2", "s3"})
        c.deliver()
        c.do("s1", lambda core: core.propose(command("write", "x", "old")))  # index 2, term 1
        held = [m for m in c.queue if isinstance(m, AppendEntries) and m.dst == "s3"]
        c.deliver(lambda m: False)
        c.crash("s1")
        c.elect("s2", {"s3"})  # its no-op is index 2, term 2
        c.deliver(lambda m: isinstance(m, AppendEntries) and bool(m.entries) or m.dst == "s2")
        self.assertEqual((c.core("s2").log.committed, c.core("s3").log.committed), (2, 1))
        c.queue.extend(held)  # the old leader's message finally arrives
        c.deliver(lambda m: m in held)
        self.assertEqual(c.core("s3").log.term(2), 2)
        for _ in range(3):
            c.do("s2", lambda core: core.tick())
            c.deliver()
        c.restart("s1")
        for _ in range(3):
            c.do("s2", lambda core: core.tick())
            c.deliver()
        self.assertEqual({c.core(i).log.term(2) for i in c.ids}, {2})

    def test_reads_wait_for_the_new_leaders_commit(self) -> None:
        """A new leader serves no read before it knows the commit index: a
        write acknowledged by the old leader is visible to every later read."""
        c = Scripted(["s1", "s2", "s3"], check_quorum=False)
        c.elect("s1", {"s2", "s3"})
        c.deliver()
        c.do("s1", lambda core: core.tick())
        c.deliver()
        c.do("s1", lambda core: core.propose(command("write", "x", "acknowledged")))
        # Followers store it; only s1 learns that it committed.
        c.deliver(lambda m: not (isinstance(m, (AppendEntries, Heartbeat)) and m.commit >= 2))
        self.assertEqual(c.nodes["s1"].data.get("x"), "acknowledged")
        c.crash("s1")
        new = c.elect("s2", {"s3"})
        self.assertLess(new.log.committed, 2)
        c.do("s2", lambda core: core.read_index(b"after-the-write"))
        for _ in range(2):
            c.do("s2", lambda core: core.tick())
            c.deliver(lambda m: isinstance(m, (Heartbeat, HeartbeatResponse)),
                      keep=lambda m: True)  # fmt: skip
        for state in c.read_states["s2"]:
            self.assertGreaterEqual(state.index, 2, "a read misses the acknowledged write")
        c.deliver()
        c.do("s2", lambda core: core.tick())
        c.deliver()
        self.assertEqual([s.context for s in c.read_states["s2"]], [b"after-the-write"])
        self.assertEqual(c.nodes["s2"].data.get("x"), "acknowledged")

    def test_restarted_voter_does_not_vote_twice(self) -> None:
        """n2 votes for n1, crashes, restarts, and is asked again by n3 in the
        same term: its vote was durable, so it refuses."""
        c = Scripted(["n1", "n2", "n3"], pre_vote=False)
        c.elect("n1", {"n2"})
        c.crash("n2")
        c.restart("n2")
        c.do("n3", lambda core: core.campaign(prevote=False))
        c.deliver(lambda m: "n1" not in (m.src, m.dst))
        answers = [m for m in c.queue if isinstance(m, RequestVoteResponse)]
        self.assertIsNot(c.core("n3").role, Role.LEADER)
        self.assertEqual(answers, [])
