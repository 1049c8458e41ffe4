"""Protocol-aware recovery with real processes (SPEC §11): a member whose
WAL lost frames it had synced (a zeroed tail, as a lost page cache leaves
it) comes back as a non-voting member, says so, and is restored by the
leader; no acknowledged registration is lost."""

from __future__ import annotations

import os
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.e2e.harness import http, start_cluster, status
from tests.e2e.test_cluster import _service, wait_until

BOUND = 20.0


class RecoveryTests(SynchronousTestCase):
    def test_a_member_that_lost_synced_frames_is_restored_by_the_leader(self) -> None:
        nodes = start_cluster(self)
        leader = next(n for n in nodes if n.node_id == status(nodes[0])["leader"])
        victim = next(n for n in nodes if n is not leader)
        acked = []
        for n in range(40):
            code, _ = http("PUT", f"{leader.url}/skydns/services/r{n}", _service(f"127.0.2.{n}"))
            self.assertEqual(code, 201)
            acked.append(f"r{n}")
        wait_until(lambda: http("GET", f"{victim.url}/skydns/services/r39")[0] == 200,
                   "the victim has every write")  # fmt: skip
        victim.kill()
        wal = os.path.join(victim.data_dir, "wal")
        [segment] = [os.path.join(wal, name) for name in os.listdir(wal)]
        size = os.path.getsize(segment)
        with open(segment, "r+b") as f:  # zero the last third, keeping the size
            f.seek(size * 2 // 3)
            f.write(b"\0" * (size - size * 2 // 3))
        for n in range(40, 50):  # more writes while it is down
            self.assertEqual(http("PUT", f"{leader.url}/skydns/services/r{n}",
                                  _service(f"127.0.3.{n}"))[0], 201)  # fmt: skip
            acked.append(f"r{n}")
        victim.start(wait=False)

        def restored() -> bool:
            code, body = http("GET", victim.url + "/skydns/cluster", timeout=2.0)
            return code == 200 and body.get("recovering") is None and body.get("ready")

        wait_until(restored, "the victim was restored by the leader", BOUND)
        log = victim.log()
        self.assertIn("may have lost entries this node acknowledged", log)
        self.assertIn("brought this node's log up to date", log)
        self.assertTrue(os.path.exists(segment))
        self.assertFalse(os.path.exists(os.path.join(victim.data_dir, "RECOVERING")))
        for uuid in acked:
            self.assertEqual(http("GET", f"{victim.url}/skydns/services/{uuid}")[0], 200, uuid)

    def test_recovering_node_is_not_ready_and_says_why(self) -> None:
        """While no leader can reach it, a recovering member answers /ready
        with 503 and the reason, and GET /skydns/cluster shows it."""
        nodes = start_cluster(self)
        victim = nodes[2]
        for n in range(30):
            http("PUT", f"{nodes[0].url}/skydns/services/q{n}", _service(f"127.0.4.{n}"))
        wait_until(lambda: http("GET", f"{victim.url}/skydns/services/q29")[0] == 200,
                   "the victim has every write")  # fmt: skip
        for node in nodes:
            node.kill()
        wal = os.path.join(victim.data_dir, "wal")
        [segment] = [os.path.join(wal, name) for name in os.listdir(wal)]
        size = os.path.getsize(segment)
        with open(segment, "r+b") as f:
            f.seek(size // 2)
            f.write(b"\0" * (size - size // 2))
        victim.start(wait=False)
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            try:
                code, body = http("GET", victim.url + "/ready", timeout=2.0)
                break
            except OSError:
                time.sleep(0.05)
        self.assertEqual(code, 503)
        self.assertIn("waiting for the leader to bring the log up to date", str(body))
        self.assertIn("corrupt data at byte offset", status(victim)["recovering"])
