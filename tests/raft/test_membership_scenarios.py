"""Snapshot and membership scenarios of issue 6, each on a fixed set of seeds.

Replay one seed alone::

    SKYDNS_SEED=123 python -m pytest tests/raft/test_membership_scenarios.py -k leader_removal
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.raft.membership_scenarios import SCENARIOS
from tests.raft.test_scenarios import seeds


class MembershipScenarioTests(SynchronousTestCase):
    def scenario(self, name: str, default: range) -> None:
        for seed in seeds(default):
            try:
                SCENARIOS[name](seed)
            except Exception as e:
                self.fail(
                    f"{name} failed on seed {seed}: {type(e).__name__}: {e}\n"
                    f"re-run alone: SKYDNS_SEED={seed} python -m pytest "
                    f"tests/raft/test_membership_scenarios.py -k test_{name}"
                )

    def test_snapshot_catch_up(self) -> None:
        """A follower behind the compaction point catches up by snapshot, and
        its exactly-once session table comes with it."""
        self.scenario("snapshot_catch_up", range(4))

    def test_snapshot_leader_change(self) -> None:
        """A leader cut off mid-snapshot-transfer changes nothing for safety."""
        self.scenario("snapshot_leader_change", range(4))

    def test_learner_promotion(self) -> None:
        """3 -> 5 under load: learners catch up (by snapshot) and are promoted."""
        self.scenario("learner_promotion", range(3))

    def test_learner_in_minority(self) -> None:
        """A voter cut off with a learner is never elected (learners do not
        vote); a planted bug counting learners' votes fails every seed."""
        self.scenario("learner_in_minority", range(4))

    def test_leader_removal(self) -> None:
        """A leader removing itself hands over and steps down."""
        self.scenario("leader_removal", range(4))

    def test_remove_partitioned(self) -> None:
        """A partitioned node is removed; coming back it disrupts no one."""
        self.scenario("remove_partitioned", range(3))

    def test_changes_during_partitions(self) -> None:
        """3 -> 5 -> 3 while a nemesis partitions, crashes and transfers."""
        self.scenario("changes_during_partitions", range(4))
