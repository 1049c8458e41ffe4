"""The fault scenarios of issue 3, each on a fixed set of seeds.

A failure names the seed and the command that replays it alone::

    SKYDNS_SEED=123 python -m pytest tests/raft/test_scenarios.py -k test_nemesis

(``SKYDNS_SEED`` takes a comma-separated list.)  ``bench/raft_seeds.py`` runs
the same scenarios over thousands of seeds.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SynchronousTestCase

from tests.raft.scenarios import SCENARIOS, unsynced_writes_lost


def seeds(default: range) -> list[int]:
    chosen = os.environ.get("SKYDNS_SEED")
    if chosen:
        return [int(s) for s in chosen.split(",")]
    return list(default)


class ScenarioTests(SynchronousTestCase):
    def scenario(self, name: str, default: range) -> None:
        for seed in seeds(default):
            try:
                SCENARIOS[name](seed)
            except Exception as e:
                self.fail(
                    f"{name} failed on seed {seed}: {type(e).__name__}: {e}\n"
                    f"re-run alone: SKYDNS_SEED={seed} python -m pytest "
                    f"tests/raft/test_scenarios.py -k test_{name}"
                )

    def test_writes_are_appended_in_batches_under_faults(self) -> None:
        """Writes reaching a node at the same moment go into its log with one
        `propose_many`, as the real node does: the leader-crash scenario,
        which checks linearizability, runs with such batches."""
        runs = [SCENARIOS["leader_crash_mid_replication"](seed) for seed in range(3)]
        self.assertGreater(sum(run.batched for run in runs), 0)

    def test_split_votes(self) -> None:
        """After a split vote a later term elects exactly one leader."""
        self.scenario("split_votes", range(20))

    def test_leader_crash_mid_replication(self) -> None:
        """Leaders crashing with unacknowledged entries lose no acknowledged write."""
        self.scenario("leader_crash_mid_replication", range(8))

    def test_partitioned_old_leader(self) -> None:
        """A partitioned old leader commits nothing and serves no stale read."""
        self.scenario("partitioned_old_leader", range(12))

    def test_figure8_scripted(self) -> None:
        """The paper's Figure 8, both endings, step by step."""
        self.scenario("figure8_scripted", range(2))

    def test_figure8_randomized(self) -> None:
        """Leaders crash or are cut off soon after taking writes; logs diverge."""
        self.scenario("figure8_randomized", range(10))

    def test_stale_leader_messages(self) -> None:
        """A deposed leader's late AppendEntries changes nothing."""
        self.scenario("stale_leader_messages", range(2))

    def test_reads_across_leader_change(self) -> None:
        """A new leader serves reads only once it knows the commit index."""
        self.scenario("reads_across_leader_change", range(2))

    def test_restart_no_double_vote(self) -> None:
        """A voter that crashes and restarts never votes twice in a term."""
        self.scenario("restart_no_double_vote", range(30))

    def test_unsynced_writes_lost(self) -> None:
        """Crashes inside fsyncs lose unsynced writes without breaking safety."""
        self.scenario("unsynced_writes_lost", range(25))

    def test_unreliable_network(self) -> None:
        """Loss, duplication and reordering; convergence once the network calms."""
        self.scenario("unreliable_network", range(12))

    def test_lagging_and_divergent(self) -> None:
        """Lagging and divergent followers catch up, the latter in few round trips."""
        self.scenario("lagging_and_divergent", range(6))

    def test_prevote_check_quorum(self) -> None:
        """Asymmetric partitions neither depose a healthy leader nor keep a lost one."""
        self.scenario("prevote_check_quorum", range(10))

    def test_transfer_under_load(self) -> None:
        """Leadership transfers complete under client load, histories linearizable."""
        self.scenario("transfer_under_load", range(4))

    def test_nemesis(self) -> None:
        """Random partitions, crashes and network faults; histories linearizable."""
        self.scenario("nemesis", range(15))


class HarnessTests(SynchronousTestCase):
    def test_detects_send_before_sync(self) -> None:
        """The harness is sharp: an adapter that sends before syncing is caught."""
        caught = 0
        for seed in range(3):
            try:
                unsynced_writes_lost(seed, unsafe=True)
            except AssertionError:
                caught += 1
        self.assertEqual(caught, 3)
