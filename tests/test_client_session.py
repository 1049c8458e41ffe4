"""The client's lease calls and `Session` (one lease for every instance of a
process) against the real API over a `LocalCluster`."""

from __future__ import annotations

from typing import Any

from treq.testing import StubTreq
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from skydns.client import NotFound, ServiceSpec, Session, SkyDNSClient
from skydns.commands import Checkpoint, Command
from skydns.http.api import make_api
from skydns.leases.expiry import LeaseKeeper
from skydns.registry import Applied, Registry
from skydns.testing import LocalCluster

BASE = "http://127.0.0.1:8080"


def web(host: str) -> ServiceSpec:
    return ServiceSpec("web", "production", "east", "1.0", host, 8000)


class Recording(LocalCluster):
    def __init__(self, registry: Registry, clock: task.Clock) -> None:
        super().__init__(registry, clock=clock, record_renewals=False)
        self.proposed: list[Command] = []

    def propose(self, command: Command) -> Deferred[Applied]:
        self.proposed.append(command)
        return super().propose(command)


class LeaseClientTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.registry = Registry()
        self.cluster = Recording(self.registry, self.clock)
        self.stub = StubTreq(make_api(self.cluster, self.clock, "skydns.local").resource())
        self.client = SkyDNSClient(BASE, http=self.stub, clock=self.clock)
        keeper = LeaseKeeper(self.cluster, self.clock, lessor=self.cluster.lessor)
        keeper.startService()
        self.addCleanup(keeper.stopService)

    def result(self, d: "Deferred[Any]") -> Any:
        self.stub.flush()
        return self.successResultOf(d)

    def advance(self, seconds: float) -> None:
        for _ in range(round(seconds * 10)):
            self.clock.advance(0.1)
            self.stub.flush()

    def test_lease_calls(self) -> None:
        lease = self.result(self.client.grant_lease(20))
        self.assertEqual(lease.ttl, 20)
        spec = ServiceSpec("web", host="10.0.0.1", port=80, lease=lease.id)
        info = self.result(self.client.register("w1", spec))
        self.assertEqual((info.lease, info.ttl), (lease.id, 20))
        self.assertEqual(self.result(self.client.renew_lease(lease.id)), 20)
        shown = self.result(self.client.lease(lease.id, consistent=True))
        self.assertEqual((shown.ttl, shown.instances), (20, ("w1",)))
        self.assertEqual(self.result(self.client.revoke_lease(lease.id)), ["w1"])
        self.stub.flush()
        self.failureResultOf(self.client.renew_lease(lease.id), NotFound)

    def test_one_heartbeat_keeps_fifty_instances(self) -> None:
        """A session keeps 50 instances with one lease; in five minutes the
        log takes their registrations and a few checkpoints, nothing else."""
        session = Session(self.client, ttl=15, clock=self.clock)
        for i in range(50):
            session.add(f"w{i}", web(f"10.0.1.{i}"))
        session.startService()
        self.advance(1)
        self.assertEqual(len(self.registry), 50)
        registered = len(self.cluster.proposed)
        self.advance(300)
        self.assertEqual(len(self.registry.query(_all(), self.clock.seconds())), 50)
        logged = self.cluster.proposed[registered:]
        self.assertTrue(all(isinstance(c, Checkpoint) for c in logged), logged)
        self.assertLessEqual(len(logged), 300 / (15 / 4))
        self.assertEqual(session.grants, 1)
        self.result(session.stopService())
        self.assertEqual(len(self.registry), 0)

    def test_a_lost_lease_is_granted_again_with_every_instance(self) -> None:
        session = Session(self.client, ttl=15, clock=self.clock)
        session.startService()
        self.addCleanup(session.stopService)
        self.advance(0.5)
        self.result(session.add("w1", web("10.0.0.1")))
        self.result(session.add("w2", web("10.0.0.2")))
        first = session.lease_id
        assert first is not None
        self.result(self.client.revoke_lease(first))  # e.g. an operator's mistake
        self.assertEqual(len(self.registry), 0)
        self.advance(6)
        self.assertNotEqual(session.lease_id, first)
        self.assertEqual(session.grants, 2)
        now = self.clock.seconds()
        self.assertEqual(sorted(i.service.uuid for i in self.registry.query(_all(), now)),
                         ["w1", "w2"])  # fmt: skip
        self.result(session.remove("w1"))
        self.assertEqual([i.service.uuid for i in self.registry.query(_all(), now)], ["w2"])


def _all() -> Any:
    from skydns.patterns import Pattern

    return Pattern()
