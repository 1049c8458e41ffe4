"""The simulated scenarios over real nodes (``tests.raft.scenarios``), each
on a few fixed seeds.  A failure names the seed and the command that
replays it alone::

    SKYDNS_SEED=123 python -m pytest tests/raft/test_scenarios.py -k test_nemesis

(``SKYDNS_SEED`` takes a comma-separated list.)  ``bench/raft_seeds.py``
sweeps thousands of seeds; ``bench/raft_mutants.py`` checks that planted
bugs make these fail.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from tests.linearizability import UNKNOWN, Operation, RegisterModel, check
from tests.raft.scenarios import SCENARIOS

SEEDS = 4


def seeds(default: range) -> list[int]:
    chosen = os.environ.get("SKYDNS_SEED")
    if chosen:
        return [int(s) for s in chosen.split(",")]
    return list(default)


class ScenarioTests(SynchronousTestCase):
    def scenario(self, name: str, count: int = SEEDS) -> None:
        for seed in seeds(range(count)):
            try:
                SCENARIOS[name](seed)
            except Exception as e:
                self.fail(
                    f"{name} failed on seed {seed}: {type(e).__name__}: {e}\n"
                    f"re-run alone: SKYDNS_SEED={seed} python -m pytest "
                    f"tests/raft/test_scenarios.py -k test_{name}"
                )

    def test_leader_crashes(self) -> None:
        """Leaders crash mid-replication; nothing acknowledged is lost."""
        self.scenario("leader_crashes")

    def test_five_nodes(self) -> None:
        """Five nodes under partitions, crashes and transfers."""
        self.scenario("five_nodes")

    def test_figure8(self) -> None:
        """Figure 8 made likely: old-term entries linger on a minority."""
        self.scenario("figure8")

    def test_unreliable_network(self) -> None:
        """Loss, duplication, reordering and long delays."""
        self.scenario("unreliable_network")

    def test_lagging_followers(self) -> None:
        """Followers return lagging or divergent and catch up."""
        self.scenario("lagging_followers", 2)

    def test_restarts(self) -> None:
        """Crashes inside syncs, torn writes and restarts keep every promise."""
        self.scenario("restarts")

    def test_nemesis(self) -> None:
        """Every fault at once."""
        self.scenario("nemesis")

    def test_partitioned_leader(self) -> None:
        """A partitioned old leader commits nothing and serves no stale read."""
        self.scenario("partitioned_leader")

    def test_reads_across_leader_changes(self) -> None:
        """Reads through leader crashes and transfers stay linearizable."""
        self.scenario("reads_across_leader_changes")

    def test_slow_follower(self) -> None:
        """A CPU-starved follower causes no election."""
        self.scenario("slow_follower")

    def test_lost_quorum(self) -> None:
        """CheckQuorum: a leader that hears no quorum steps down; a deaf link
        alone deposes no one."""
        self.scenario("lost_quorum")

    def test_membership(self) -> None:
        """Joins, promotions and removals under faults."""
        self.scenario("membership")

    def test_replicas(self) -> None:
        """Half the joins as read replicas, under faults: none is ever made a voter."""
        self.scenario("replicas")

    def test_concurrent_joins(self) -> None:
        """Two, then four nodes joining at once all become voters."""
        self.scenario("concurrent_joins", 2)

    def test_snapshots(self) -> None:
        """Catching up by snapshot, leader changes mid-transfer, restarts."""
        self.scenario("snapshots")

    def test_elections(self) -> None:
        """No PreVote, late votes, crashing voters: one leader per term."""
        self.scenario("elections")

    def test_failover_reads(self) -> None:
        """A leader dies right after answering a write: no stale read follows."""
        self.scenario("failover_reads", 2)

    def test_learners(self) -> None:
        """A leader cut off with a learner commits nothing."""
        self.scenario("learners", 2)

    def test_slow_disks(self) -> None:
        """What arrives while a Ready is saved waits for it."""
        self.scenario("slow_disks", 2)

    def test_snapshot_over_divergence(self) -> None:
        """A snapshot over a divergent log replaces the whole log."""
        self.scenario("snapshot_over_divergence", 2)

    def test_figure8_steered(self) -> None:
        """Figure 8, step by step on real nodes."""
        self.scenario("figure8_steered")

    def test_membership_erratum(self) -> None:
        """The single-server change erratum, step by step on real nodes."""
        self.scenario("membership_erratum")

    def test_failover_read_steered(self) -> None:
        """A read at a new leader before its term commits sees every
        acknowledged write (checked by the linearizability checker)."""
        self.scenario("failover_read_steered")

    def test_revote_steered(self) -> None:
        """A voter restarted mid-election does not vote twice in a term."""
        self.scenario("revote_steered")

    def test_save_conflict_steered(self) -> None:
        """A follower saving entries that a new leader replaces waits for the
        save before taking the new ones."""
        self.scenario("save_conflict_steered")

    def test_lost_vote_steered(self) -> None:
        """A follower that lost acknowledged entries does not vote for a
        node lacking them."""
        self.scenario("lost_vote_steered")

    def test_lost_synced_data(self) -> None:
        """A disk that loses acknowledged writes costs nothing acknowledged."""
        self.scenario("lost_synced_data")

    def test_leases_leader_changes(self) -> None:
        """Leases kept alive through any node survive leader crashes; those
        let go are revoked in time; checkpoints, not renewals, reach the log."""
        self.scenario("leases_leader_changes")

    def test_leases_partitions(self) -> None:
        """The same while the leader or a follower is cut off."""
        self.scenario("leases_partitions")

    def test_leases_clock_jumps(self) -> None:
        """The same while wall clocks step a quarter second either way."""
        self.scenario("leases_clock_jumps")


class CheckerTests(SynchronousTestCase):
    def test_a_stale_read_is_caught(self) -> None:
        """The checker flags a read that returns a value older than a write
        that had completed before the read began (what a leader serving
        reads without confirming its leadership returns)."""
        history = [
            Operation("c1", "x", "write", "new", None, call=1.0, ret=2.0),
            Operation("c2", "x", "read", None, None, call=3.0, ret=4.0),
        ]
        self.assertTrue(check(history, RegisterModel()).violation)
        fresh = [history[0], Operation("c2", "x", "read", None, "new", call=3.0, ret=4.0)]
        self.assertFalse(check(fresh, RegisterModel()).violation)

    def test_an_unanswered_write_may_or_may_not_happen(self) -> None:
        history = [
            Operation("c1", "x", "write", "maybe", UNKNOWN, call=1.0, ret=None),
            Operation("c2", "x", "read", None, None, call=3.0, ret=4.0),
            Operation("c2", "x", "read", None, "maybe", call=5.0, ret=6.0),
        ]
        self.assertFalse(check(history, RegisterModel()).violation)
