"""The leader's lease deadlines (`Lessor`), the checkpoints and expiry the
lease loop makes of them, and the batching of renewals to the leader."""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from skydns.cluster import NotLeader
from skydns.commands import Checkpoint, Command, Expire, GrantLease, Register, RevokeLease
from skydns.leases.batcher import RenewalBatcher
from skydns.leases.expiry import LeaseKeeper
from skydns.leases.lessor import Lessor, NotLeading
from skydns.leases.renewal import (
    INSTANCE,
    LEASE,
    MAX_RENEWALS,
    NEEDS_LOG,
    Renewal,
    decode_answers,
    decode_renewals,
    encode_answers,
    encode_renewals,
)
from skydns.names import Service
from skydns.registry import Applied, Registry
from skydns.testing import LocalCluster

L1 = "00000000000000a1"


def service(uuid: str, ttl: int = 30, lease: str = "") -> Service:
    return Service(uuid, "rails", "production", "", "", "10.0.0.1", 80, ttl, lease=lease)


class Leader(LocalCluster):
    """A LocalCluster whose leadership (a term, or None) a test sets; it
    records what is proposed."""

    def __init__(self, registry: Registry, clock: Clock) -> None:
        super().__init__(registry, clock=clock)
        self.term: Optional[int] = 1
        self.proposed: list[Command] = []
        self.lessor = Lessor(registry, clock, lambda: self.term, grace=1.0)

    def is_leader(self) -> bool:
        return self.term is not None

    def propose(self, command: Command) -> Deferred[Applied]:
        if self.term is None:
            return fail(NotLeader("deposed"))
        self.proposed.append(command)
        return super().propose(command)

    def logged(self, kind: type) -> list[Any]:
        return [c for c in self.proposed if isinstance(c, kind)]


class LeaseLoopTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.registry = Registry()
        self.cluster = Leader(self.registry, self.clock)
        self.keeper = LeaseKeeper(self.cluster, self.clock, interval=0.5,
                                  lessor=self.cluster.lessor)  # fmt: skip
        self.keeper.startService()
        self.addCleanup(self.keeper.stopService)
        self.cluster.propose(GrantLease(L1, 10, self.clock.seconds()))
        for i in range(3):
            self.cluster.propose(Register(service(f"l{i}", lease=L1), self.clock.seconds()))
        self.cluster.propose(Register(service("own", ttl=10), self.clock.seconds()))
        self.cluster.proposed.clear()

    def run_for(self, seconds: float, renew_every: float = 0.0,
                renewals: tuple[Renewal, ...] = ()) -> None:  # fmt: skip
        """Advance the clock in 0.1 s steps, renewing every ``renew_every``."""
        every = round(renew_every * 10)
        for step in range(1, round(seconds * 10) + 1):
            self.clock.advance(0.1)
            if every and step % every == 0:
                answers = self.cluster.lessor.renew(list(renewals))
                self.assertNotIn(None, answers)

    def test_renewed_leases_live_with_a_bounded_number_of_checkpoints(self) -> None:
        """Renewed every 3 s for 120 s (40 renewals each), a lease and an
        instance of its own TTL stay, their recorded ends always more than
        the margin ahead; the log took a checkpoint every few seconds, not
        one per renewal."""
        renewals = (Renewal(LEASE, L1), Renewal(INSTANCE, "own", 10))
        for _ in range(40):
            self.run_for(3.0, renew_every=3.0, renewals=renewals)
            now = self.clock.seconds()
            for uuid in ("l0", "l1", "l2", "own"):
                instance = self.registry.get(uuid, now)
                self.assertIsNotNone(instance, (uuid, now))
                # the next renewal and a failover's margin stay covered
                self.assertGreater(instance.expires - now, 3.0)  # type: ignore[union-attr]
        checkpoints = self.cluster.logged(Checkpoint)
        self.assertLessEqual(len(checkpoints), 120 / 3)
        self.assertGreaterEqual(len(checkpoints), 120 / 10)
        self.assertEqual(self.cluster.logged(Expire) + self.cluster.logged(RevokeLease), [])

    def test_frequent_renewals_checkpoint_rarely(self) -> None:
        """A TTL 30 lease renewed every second: its recorded end is moved
        only when it comes within a second and the margin, so the log takes
        a checkpoint about every 26 s, not 120 of them in two minutes."""
        lease = "00000000000000d4"
        self.cluster.propose(GrantLease(lease, 30, self.clock.seconds()))
        self.cluster.proposed.clear()
        for _ in range(120):
            self.run_for(1.0, renew_every=1.0, renewals=(Renewal(LEASE, lease),))
            recorded = self.registry.lease(lease, self.clock.seconds())
            assert recorded is not None
            self.assertGreater(recorded.expires - self.clock.seconds(), 1.0 + 3.0 - 0.5)
        ends = [c for c in self.cluster.logged(Checkpoint) if c.leases and c.leases[0][0] == lease]
        self.assertLessEqual(len(ends), 120 / 26 + 1)

    def test_a_retry_does_not_shrink_the_interval(self) -> None:
        """A renewal retried 10 ms after the last one (or a second client)
        leaves the interval about where the client's cadence put it, so a
        failover still finds the recorded end past the next renewal."""
        lessor = self.cluster.lessor
        for _ in range(3):
            self.run_for(9.0)
            lessor.renew([Renewal(LEASE, L1)])
        self.clock.advance(0.01)
        lessor.renew([Renewal(LEASE, L1)])
        held = lessor._deadlines[(LEASE, L1)]
        self.assertGreater(held.interval, 8.0)

    def test_a_lease_let_go_lapses_at_its_last_renewal_plus_ttl(self) -> None:
        self.run_for(4.0, renew_every=1.0, renewals=(Renewal(LEASE, L1),))
        last = self.clock.seconds()
        self.run_for(9.5)
        self.assertIsNotNone(self.registry.get("l0", self.clock.seconds()))
        self.run_for(1.5)
        self.assertIsNone(self.registry.get("l0", self.clock.seconds()))
        self.assertEqual(len(self.registry.lease_members(L1)), 0)
        revoked = self.cluster.logged(RevokeLease)
        self.assertEqual([c.leases for c in revoked], [(L1,)])
        self.assertTrue(revoked[0].lapsed)
        self.assertLess(revoked[0].now - (last + 10), 1.0)

    def test_a_new_leader_forgets_deadlines_and_waits_a_grace_period(self) -> None:
        """Renewals taken in term 1 are forgotten in term 2; the new leader
        expires nothing for its grace period, then what the log says."""
        self.run_for(5.0)  # recorded end: 1010; nothing renewed
        self.cluster.lessor.renew([Renewal(LEASE, L1)])  # deadline 1015, in memory
        self.cluster.term = 2
        self.run_for(5.1)  # 1010.1: the recorded end has passed
        self.assertIsNone(self.registry.get("l0", self.clock.seconds()))
        # The renewal taken before the change was lost with the term ...
        self.assertEqual(len(self.cluster.lessor), 0)
        self.assertEqual([c.leases for c in self.cluster.logged(RevokeLease)], [(L1,)])

    def test_grace_after_taking_over(self) -> None:
        """A lease that lapses just as a new leader takes over is revoked no
        sooner than the grace period (1 s here) after it took over."""
        self.run_for(9.0)
        self.cluster.term = 2  # the loop sees it at its next sweep
        self.run_for(0.5)
        took_over = self.cluster.lessor.leading_since
        self.run_for(2.0)
        revoked = self.cluster.logged(RevokeLease)
        self.assertEqual([c.leases for c in revoked], [(L1,)])
        self.assertGreaterEqual(revoked[0].now, took_over + 1.0)
        self.assertGreater(took_over + 1.0, 1010.0)  # later than the lease's end

    def test_renewal_off_the_leader_is_refused(self) -> None:
        self.cluster.term = None
        with self.assertRaises(NotLeading):
            self.cluster.lessor.renew([Renewal(LEASE, L1)])

    def test_answers(self) -> None:
        lessor = self.cluster.lessor
        answers = lessor.renew([
            Renewal(LEASE, L1), Renewal(LEASE, "00000000000000ff"),
            Renewal(INSTANCE, "OWN", 10), Renewal(INSTANCE, "own", 20),
            Renewal(INSTANCE, "l1", 10), Renewal(INSTANCE, "nobody", 10),
        ])  # fmt: skip
        self.assertEqual(answers, [10, None, 10, NEEDS_LOG, 10, None])

    def test_checkpoints_per_sweep_are_bounded(self) -> None:
        self.keeper.stopService()
        keeper = LeaseKeeper(self.cluster, self.clock, batch=2, checkpoints=2,
                             lessor=self.cluster.lessor)  # fmt: skip
        now = self.clock.seconds()
        for i in range(10):
            self.cluster.propose(Register(service(f"o{i}", ttl=4), now))
        self.clock.advance(1.5)  # 2.5 s of 4 recorded left: less than the margin
        self.cluster.lessor.renew([Renewal(INSTANCE, f"o{i}", 4) for i in range(10)])
        self.cluster.proposed.clear()
        self.successResultOf(keeper.sweep())
        logged = self.cluster.logged(Checkpoint)
        self.assertEqual([len(c.instances) for c in logged], [2, 2])


class RenewalCodingTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        renewals = [Renewal(LEASE, L1), Renewal(INSTANCE, "web-1", 30)]
        self.assertEqual(decode_renewals(encode_renewals(renewals)), renewals)
        self.assertEqual(decode_answers(encode_answers([30, None, -1]), 3), [30, None, -1])

    def test_bad_requests(self) -> None:
        for data in [b"{}", b'[["lease","x",0]]', b'[["who","a",0]]', b'[["instance","a",-3]]',
                     encode_renewals([Renewal(INSTANCE, "a", 1)] * (MAX_RENEWALS + 1))]:
            with self.assertRaises(ValueError, msg=data):
                decode_renewals(data)
        with self.assertRaises(ValueError):
            decode_answers(b"[1]", 2)


class BatcherTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.asked: list[bytes] = []
        self.answer: Any = None

    def ask(self, data: bytes) -> Deferred[bytes]:
        self.asked.append(data)
        if isinstance(self.answer, Exception):
            return fail(self.answer)
        renewals = decode_renewals(data)
        return succeed(encode_answers([30 if r.key != "gone" else None for r in renewals]))

    def test_renewals_of_one_moment_go_in_one_request(self) -> None:
        batcher = RenewalBatcher(self.ask, self.clock, delay=0.002)
        results = [batcher.renew(Renewal(INSTANCE, f"u{i}", 30)) for i in range(50)]
        gone = batcher.renew(Renewal(INSTANCE, "gone", 30))
        self.assertEqual(self.asked, [])
        self.clock.advance(0.002)
        self.assertEqual(len(self.asked), 1)
        self.assertEqual([self.successResultOf(d) for d in results], [30] * 50)
        self.assertIsNone(self.successResultOf(gone))

    def test_a_full_batch_goes_at_once(self) -> None:
        batcher = RenewalBatcher(self.ask, self.clock)
        for i in range(MAX_RENEWALS):
            batcher.renew(Renewal(INSTANCE, f"u{i}", 30))
        self.assertEqual(len(self.asked), 1)
        self.clock.advance(1)
        self.assertEqual(len(self.asked), 1)

    def test_no_leader_fails_each_renewal_with_not_leader(self) -> None:
        self.answer = RuntimeError("no leader is known")
        batcher = RenewalBatcher(self.ask, self.clock)
        d = batcher.renew(Renewal(LEASE, L1))
        self.clock.advance(1)
        self.failureResultOf(d, NotLeader)
