"""Tests for skydns.leases: the leader's lease-expiry loop."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from skydns.cluster import NotLeader
from skydns.commands import Command, Expire, Register
from skydns.leases.expiry import MAX_BATCH, LeaseKeeper
from skydns.names import Service
from skydns.registry import Applied, Outcome, Registry
from skydns.testing import LocalCluster


def service(uuid: str, ttl: int = 1, no_expire: bool = False) -> Service:
    return Service(uuid, "rails", "production", "east", "1", "h", 80, ttl, no_expire=no_expire)


class FakeCluster(LocalCluster):
    """A LocalCluster whose leadership and proposals a test controls."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry)
        self.leader = True
        self.proposed: list[Command] = []
        self.pending: list[Deferred[Applied]] = []
        self.hold = False
        self.failure: Exception | None = None

    def is_leader(self) -> bool:
        return self.leader

    def propose(self, command: Command) -> Deferred[Applied]:
        self.proposed.append(command)
        if self.failure is not None:
            return fail(self.failure)
        if self.hold:
            d: Deferred[Applied] = Deferred()
            self.pending.append(d)
            return d
        return super().propose(command)


class LeaseKeeperTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.registry = Registry()
        self.cluster = FakeCluster(self.registry)
        self.keeper = LeaseKeeper(self.cluster, self.clock, interval=0.5)

    def register(self, *services: Service) -> None:
        for s in services:
            self.registry.apply(Register(s, self.clock.seconds()))

    def start(self) -> None:
        self.keeper.startService()
        self.addCleanup(self.stop)

    def stop(self) -> None:
        if self.keeper.running:
            self.successResultOf(self.keeper.stopService())

    def test_expires_within_interval(self) -> None:
        """With LocalCluster, a lapsed lease is removed at the next tick, within
        one interval of expiry; NoExpire instances stay."""
        cluster = LocalCluster(self.registry)
        keeper = LeaseKeeper(cluster, self.clock, interval=0.5)
        removed: list[Any] = []
        cluster.add_apply_listener(lambda c, a, live: removed.extend(a.removals))
        self.register(service("a", ttl=1), service("b", ttl=2), service("c", no_expire=True))
        keeper.startService()
        self.clock.advance(0.5)
        self.assertEqual(len(self.registry), 3)
        self.clock.advance(0.5)
        self.assertEqual(len(self.registry), 2)
        self.assertIsNone(self.registry.get("a", 1.0))
        self.clock.pump([0.5, 0.5])
        self.assertEqual(len(self.registry), 1)
        self.assertEqual([r.instance.service.uuid for r in removed], ["a", "b"])
        self.clock.advance(1000)
        self.assertEqual(len(self.registry), 1)
        self.successResultOf(keeper.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_expire_carries_clock_time(self) -> None:
        """Expire commands carry the clock's time at the sweep."""
        self.register(service("a", ttl=1))
        self.start()
        self.clock.pump([0.5, 0.5])
        self.assertEqual(self.cluster.proposed, [Expire(("a",), 1.0)])

    def test_only_leader(self) -> None:
        """A node that is not the leader proposes nothing."""
        self.cluster.leader = False
        self.register(service("a"))
        self.start()
        self.clock.pump([0.5] * 10)
        self.assertEqual(self.cluster.proposed, [])
        self.cluster.leader = True
        self.clock.advance(0.5)
        self.assertEqual(len(self.cluster.proposed), 1)

    def test_nothing_to_expire(self) -> None:
        self.register(service("a", ttl=100))
        self.start()
        self.clock.pump([0.5] * 10)
        self.assertEqual(self.cluster.proposed, [])

    def test_batches(self) -> None:
        """Many lapsed leases go out in commands of at most MAX_BATCH UUIDs."""
        self.register(*(service(f"u{i}") for i in range(2 * MAX_BATCH + 7)))
        self.start()
        self.clock.pump([0.5, 0.5])
        sizes = [len(c.uuids) for c in self.cluster.proposed if isinstance(c, Expire)]
        self.assertEqual(sizes, [MAX_BATCH, MAX_BATCH, 7])
        self.assertEqual(len(self.registry), 0)

    def test_no_overlap(self) -> None:
        """While a proposal is in flight no other is made; the sweep goes on
        when it is applied."""
        self.register(*(service(f"u{i}") for i in range(MAX_BATCH + 1)))
        self.cluster.hold = True
        self.start()
        self.clock.pump([0.5] * 10)
        self.assertEqual(len(self.cluster.proposed), 1)
        self.cluster.pending.pop().callback(Applied(Outcome.OK))
        self.assertEqual(len(self.cluster.proposed), 2)
        self.assertEqual(len(self.cluster.proposed[1].uuids), 1)  # type: ignore[union-attr]

    def test_failure_logged_loop_continues(self) -> None:
        """A failed proposal is logged and the next tick tries again."""
        self.register(service("a"))
        self.cluster.failure = RuntimeError("disk on fire")
        self.start()
        self.clock.pump([0.5, 0.5])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.cluster.failure = None
        self.clock.advance(0.5)
        self.assertEqual(len(self.cluster.proposed), 2)
        self.assertEqual(len(self.registry), 0)

    def test_not_leader_error_quiet(self) -> None:
        """Losing leadership mid-proposal is not an error; the loop carries on."""
        self.register(service("a"))
        self.cluster.failure = NotLeader()
        self.start()
        self.clock.pump([0.5] * 4)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(len(self.cluster.proposed), 3)

    def test_timeout(self) -> None:
        """A proposal that never completes times out (a warning: the cluster
        was too slow, nothing is broken) and the loop goes on."""
        keeper = LeaseKeeper(self.cluster, self.clock, interval=0.5, timeout=2.0)
        self.register(service("a"))
        self.cluster.hold = True
        keeper.startService()
        self.clock.pump([0.5, 0.5])
        self.assertEqual(len(self.cluster.proposed), 1)
        self.clock.pump([0.5] * 4)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.clock.advance(0.5)
        self.assertEqual(len(self.cluster.proposed), 2)
        self.successResultOf(keeper.stopService())

    def test_stop_cancels_timer_and_proposal(self) -> None:
        """stopService leaves no timers and cancels an in-flight proposal quietly."""
        self.register(service("a"))
        self.cluster.hold = True
        self.keeper.startService()
        self.clock.pump([0.5, 0.5])
        pending = self.cluster.pending[0]
        self.successResultOf(self.keeper.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertTrue(pending.called)  # cancelled
        self.assertEqual(self.flushLoggedErrors(), [])
        self.clock.pump([0.5] * 4)
        self.assertEqual(len(self.cluster.proposed), 1)

    def test_stop_idle(self) -> None:
        self.keeper.startService()
        self.successResultOf(self.keeper.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])
