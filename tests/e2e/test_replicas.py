"""Read replicas with real `twistd skydns` processes: a node started with
``--join … --non-voter`` gets the registry, answers DNS, reads and watches,
forwards writes, is never promoted, and never counts in a quorum (SPEC.md §7)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.e2e.harness import SkyDNSProcess, dns_query, http
from tests.e2e.test_cluster import wait_until
from tests.e2e.test_membership import roles


def srv_targets(node: SkyDNSProcess, name: str) -> list[str]:
    answer = dns_query(name, "SRV", node.dns_port, timeout=2.0)
    return sorted(r.target.to_text() for rrset in answer.answer for r in rrset)


class ReadReplicaTests(SynchronousTestCase):
    def node(self, node_id: str, *extra: str) -> SkyDNSProcess:
        node = SkyDNSProcess(node_id=node_id, extra_args=["--no-forward", *extra])
        self.addCleanup(node.cleanup)
        return node

    def put(self, node: SkyDNSProcess, uuid: str) -> tuple[int, object]:
        return http("PUT", f"{node.url}/skydns/services/{uuid}",
                    {"Name": "rails", "Environment": "production", "Host": "10.0.0.1",
                     "Port": 8080, "TTL": 600}, timeout=20.0)  # fmt: skip

    def test_replica_serves_and_never_votes(self) -> None:
        voter = self.node("v1").start()
        voter.wait_for("/ready")
        replica = self.node("r1", "--join", f"127.0.0.1:{voter.raft_port}", "--non-voter")
        replica.start()
        wait_until(lambda: roles(voter) == {"v1": "leader", "r1": "replica"},
                   "r1 joined as a read replica", 30.0)  # fmt: skip
        replica.wait_for("/ready")

        # A write sent to the replica is forwarded; the replica answers DNS
        # and consistent reads with it.
        status, body = self.put(replica, "a1")
        self.assertEqual(status, 201, body)
        status, body = http("GET", f"{replica.url}/skydns/services/a1?consistent=true")
        self.assertEqual(status, 200, body)
        wait_until(lambda: srv_targets(replica, "rails.production.skydns.local") ==
                   ["a1.skydns.local."], "the replica answers DNS")  # fmt: skip

        # Caught up for seconds, it is still not promoted.
        time.sleep(3.0)
        self.assertEqual(roles(voter), {"v1": "leader", "r1": "replica"})
        self.assertEqual(roles(replica)["r1"], "replica")

        # A watch on the replica (a long poll from the index it has) wakes
        # for a write made on the voter.
        url = f"{replica.url}/skydns/services/?query=rails.production"
        with urllib.request.urlopen(url, timeout=5) as response:
            index = response.headers["X-SkyDNS-Index"]
        woken: list[Any] = []
        poll = threading.Thread(target=lambda: woken.append(json.load(urllib.request.urlopen(
            f"{url}&index={index}&wait=20s", timeout=30))))  # fmt: skip
        poll.start()
        time.sleep(0.5)
        self.assertEqual(woken, [])
        status, body = self.put(voter, "w1")
        self.assertEqual(status, 201, body)
        poll.join(10)
        self.assertIn("w1", json.dumps(woken))
        status, body = http("DELETE", f"{voter.url}/skydns/services/w1")
        self.assertEqual(status, 200, body)

        # Not in the quorum: with the replica down the lone voter commits.
        replica.kill()
        started = time.monotonic()
        status, body = self.put(voter, "a2")
        self.assertEqual(status, 201, body)
        self.assertLess(time.monotonic() - started, 2.0)

        # Back, it catches up and is still a replica.
        replica.start()
        wait_until(lambda: srv_targets(replica, "rails.production.skydns.local") ==
                   ["a1.skydns.local.", "a2.skydns.local."], "the replica caught up")  # fmt: skip
        self.assertEqual(roles(voter)["r1"], "replica")

        # With the only voter gone, the replica never takes over: writes get
        # 503 (once the proposal times out, as on any follower cut off from
        # a quorum), DNS keeps answering from what it has.
        voter.kill()
        time.sleep(2.0)
        self.assertNotEqual(roles(replica).get("r1"), "leader")
        status, body = self.put(replica, "a3")
        self.assertEqual(status, 503, body)
        self.assertEqual(srv_targets(replica, "rails.production.skydns.local"),
                         ["a1.skydns.local.", "a2.skydns.local."])  # fmt: skip
