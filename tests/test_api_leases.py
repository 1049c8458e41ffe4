"""Leases over HTTP (SPEC.md §7), and renewals that reach the leader of a
real (in-memory) Raft cluster from any node without a log entry."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from skydns.cluster import NotLeader
from skydns.commands import Checkpoint, GrantLease, Register, Renew, RevokeLease
from skydns.leases.expiry import LeaseKeeper
from skydns.leases.renewal import INSTANCE, LEASE, Renewal
from skydns.registry import Registry
from tests.raftnodes import Cluster, service
from tests.test_api import APITestCase


class LeaseRouteTests(APITestCase):
    def grant(self, ttl: int = 30) -> str:
        response = self.call("POST", "/skydns/leases", {"TTL": ttl})
        self.assertEqual(response.code, 201, response.raw)
        body = response.json()
        self.assertEqual(body["TTL"], ttl)
        self.assertRegex(body["ID"], r"^[0-9a-f]{16}$")
        return str(body["ID"])

    def register_leased(self, uuid: str, lease: str) -> Any:
        return self.call("PUT", f"/skydns/services/{uuid}",
                         {"Host": "10.0.0.1", "Port": 80, "Name": "web", "Lease": lease})

    def test_a_lease_and_its_instances(self) -> None:
        lease = self.grant(30)
        for uuid in ("w1", "w2"):
            response = self.register_leased(uuid, lease)
            self.assertEqual(response.code, 201, response.raw)
            self.assertEqual((response.json()["Lease"], response.json()["TTL"]), (lease, 30))
        shown = self.call("GET", f"/skydns/leases/{lease}").json()
        self.assertEqual((shown["TTL"], shown["Remaining"], shown["Instances"]),
                         (30, 30, ["w1", "w2"]))  # fmt: skip
        self.clock.advance(10)
        proposed = len(self.cluster.proposed)
        renewed = self.call("PUT", f"/skydns/leases/{lease}")
        self.assertEqual((renewed.code, renewed.json()), (200, {"ID": lease, "TTL": 30}))
        self.assertEqual(len(self.cluster.proposed), proposed, "a renewal is no log entry")
        revoked = self.call("DELETE", f"/skydns/leases/{lease}")
        self.assertEqual(revoked.json(), {"ID": lease, "Removed": ["w1", "w2"]})
        self.assertEqual(self.call("GET", "/skydns/services/w1").code, 404)
        for method in ("GET", "PUT", "DELETE"):
            self.assertError(self.call(method, f"/skydns/leases/{lease}"), 404)

    def test_unknown_and_malformed_leases(self) -> None:
        self.assertError(self.call("PUT", "/skydns/leases/00000000000000ff"), 404)
        self.assertError(self.call("GET", "/skydns/leases/not-a-lease"), 404)
        response = self.register_leased("w1", "00000000000000ff")
        self.assertError(response, 404)
        self.assertIn("grant a new one", response.json()["error"])
        self.assertError(self.register_leased("w1", "NOT-HEX"), 400)
        both = self.call("PUT", "/skydns/services/w1",
                         {"Host": "10.0.0.1", "Port": 80, "NoExpire": True,
                          "Lease": "00000000000000ff"})  # fmt: skip
        self.assertError(both, 400)
        self.assertError(self.call("POST", "/skydns/leases", {"TTL": 0}), 400)
        self.assertError(self.call("POST", "/skydns/leases", {}), 400)

    def test_v1_heartbeat_is_no_log_entry_unless_the_ttl_changes(self) -> None:
        self.register("1001", TTL=30)
        proposed = len(self.cluster.proposed)
        self.clock.advance(20)
        response = self.call("PATCH", "/skydns/services/1001", {"TTL": 30})
        self.assertEqual((response.code, response.json()["TTL"]), (200, 30))
        self.assertEqual(len(self.cluster.proposed), proposed)
        response = self.call("PATCH", "/skydns/services/1001", {"TTL": 60})
        self.assertEqual((response.code, response.json()["TTL"]), (200, 60))
        self.assertIsInstance(self.cluster.proposed[-1], Renew)
        self.assertError(self.call("PATCH", "/skydns/services/nobody", {"TTL": 30}), 404)

    def test_heartbeats_keep_an_instance_alive_through_checkpoints(self) -> None:
        """Heartbeats every 5 s keep a TTL 30 instance and a TTL 30 lease for
        five minutes; the log holds a checkpoint each time a recorded end
        comes within a heartbeat interval and the margin (every 17 s or
        more here), not one per heartbeat (120)."""
        keeper = LeaseKeeper(self.cluster, self.clock, lessor=self.cluster.lessor)
        keeper.startService()
        self.addCleanup(keeper.stopService)
        self.register("1001", TTL=30)
        lease = self.grant(30)
        self.assertEqual(self.register_leased("w1", lease).code, 201)
        for _ in range(60):
            for _ in range(10):
                self.clock.advance(0.5)
            self.assertEqual(self.call("PATCH", "/skydns/services/1001", {"TTL": 30}).code, 200)
            self.assertEqual(self.call("PUT", f"/skydns/leases/{lease}").code, 200)
            self.assertEqual(self.call("GET", "/skydns/services/w1").code, 200)
            self.assertEqual(self.call("GET", "/skydns/services/1001").code, 200)
        checkpoints = [c for c in self.cluster.proposed if isinstance(c, Checkpoint)]
        self.assertLessEqual(len(checkpoints), 2 * 300 / 17)
        for _ in range(70):
            self.clock.advance(0.5)
        self.assertError(self.call("GET", "/skydns/services/w1"), 404)
        self.assertError(self.call("GET", "/skydns/services/1001"), 404)
        self.assertTrue(any(isinstance(c, RevokeLease) for c in self.cluster.proposed))


class RaftRenewalTests(SynchronousTestCase):
    def test_a_renewal_on_a_follower_reaches_the_leader(self) -> None:
        cluster = Cluster(("a", "b", "c"))
        leader = cluster.elect()
        now = cluster.clock.seconds()
        lease = "00000000000000a1"
        written = [leader.propose(GrantLease(lease, 30, now)),
                   leader.propose(Register(service("u1"), now))]  # fmt: skip
        cluster.run(0.5)
        for d in written:
            self.successResultOf(d)
        follower = cluster.follower()
        renewals = [follower.renew(Renewal(LEASE, lease)),
                    follower.renew(Renewal(INSTANCE, "u1", 30)),
                    follower.renew(Renewal(LEASE, "00000000000000ff"))]  # fmt: skip
        cluster.run(0.1)
        self.assertEqual([self.successResultOf(d) for d in renewals], [30, 30, None])
        cluster.clock.advance(29)
        self.assertTrue(leader.lessor.holds(LEASE, lease))
        self.assertTrue(leader.lessor.holds(INSTANCE, "u1"))
        cluster.clock.advance(1.5)
        self.assertFalse(leader.lessor.holds(LEASE, lease))
        self.assertEqual(len(follower.lessor), 0)

    def test_no_leader_no_renewal(self) -> None:
        cluster = Cluster(("a", "b", "c"))
        leader = cluster.elect()
        follower = cluster.follower()
        for node_id in list(cluster.nodes):
            if cluster.nodes[node_id] is not follower:
                cluster.crash(node_id)
        del leader
        cluster.run(3.0)
        d = follower.renew(Renewal(LEASE, "00000000000000a1"))
        cluster.run(0.1)
        self.failureResultOf(d, NotLeader)


__all__ = ["Clock", "Registry"]
