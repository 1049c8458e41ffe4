"""Membership changes and snapshots with real `twistd skydns` processes:
grow a one-node cluster to three with ``--join``, write under load, remove a
member, and bring a node that was down past the compaction point back by
snapshot."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.e2e.harness import SkyDNSProcess, http
from tests.e2e.test_cluster import wait_until

SNAPSHOT = ["--snapshot-entries", "40", "--snapshot-keep", "5"]


def _service(n: int) -> dict[str, object]:
    return {
        "Name": "web", "Environment": "production", "Region": "east",
        "Version": "1.0", "Host": f"127.0.1.{n % 250 + 1}", "Port": 8000 + n, "TTL": 600,
    }  # fmt: skip


def roles(node: SkyDNSProcess) -> dict[str, str]:
    status, body = http("GET", node.url + "/skydns/cluster", timeout=2.0)
    if status != 200:
        return {}
    return {m["id"]: m["role"] for m in body["members"]}


class MembershipTests(SynchronousTestCase):
    def node(self, node_id: str, *extra: str) -> SkyDNSProcess:
        node = SkyDNSProcess(node_id=node_id, extra_args=[*SNAPSHOT, *extra])
        self.addCleanup(node.cleanup)
        return node

    def register(self, node: SkyDNSProcess, first: int, count: int) -> None:
        for n in range(first, first + count):
            status, body = http("PUT", f"{node.url}/skydns/services/u{n}", _service(n))
            self.assertEqual(status, 201, body)

    def has(self, node: SkyDNSProcess, n: int) -> bool:
        status, _ = http("GET", f"{node.url}/skydns/services/u{n}", timeout=2.0)
        return status == 200

    def test_join_remove_and_catch_up_by_snapshot(self) -> None:
        first = self.node("n1").start()
        first.wait_for("/ready")
        join = ["--join", f"127.0.0.1:{first.raft_port}"]
        second = self.node("n2", *join).start()
        third = self.node("n3", *join).start()

        def grown() -> bool:
            seen = roles(first)
            return set(seen) == {"n1", "n2", "n3"} and "learner" not in seen.values()

        wait_until(grown, "n2 and n3 joined and were promoted", 40.0)
        self.register(first, 0, 60)
        wait_until(lambda: self.has(third, 59), "n3 has the writes")

        # Under load from a thread: n3 is killed and stays down while the
        # others snapshot and compact past its log.
        errors: list[Any] = []

        def load() -> None:
            try:
                self.register(second, 60, 100)
            except BaseException as e:  # reported below
                errors.append(e)

        writer = threading.Thread(target=load)
        writer.start()
        third.kill()
        writer.join(60)
        self.assertEqual(errors, [])
        third.start()
        wait_until(lambda: self.has(third, 159), "n3 caught up after its restart", 30.0)
        self.assertIn("installed from the leader", third.log())
        for n in (0, 75, 159):
            self.assertTrue(self.has(third, n), n)

        # Remove n2 through n3 (forwarded to the leader).
        status, body = http("DELETE", f"{third.url}/skydns/cluster/members/n2")
        self.assertEqual(status, 200, body)
        wait_until(lambda: set(roles(first)) == {"n1", "n3"}, "n2 removed")
        # n2 finds out (the members answer its vote requests) and says so.
        wait_until(lambda: roles(second).get("n2") == "removed", "n2 knows it was removed", 15.0)
        started = time.monotonic()
        status, body = http("PUT", f"{second.url}/skydns/services/late", _service(999))
        self.assertEqual(status, 503, body)
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertIn("this node was removed from the cluster at index", body["error"])
        status, body = http("GET", f"{second.url}/ready", timeout=2.0)
        self.assertEqual(status, 503, body)
        self.assertIn("wipe its data dir and start it with --join", second.log())
        self.register(first, 160, 5)
        wait_until(lambda: self.has(third, 164), "two voters still commit")
        status, body = http("DELETE", f"{first.url}/skydns/cluster/members/n2")
        self.assertEqual(status, 404, body)
        status, body = http("POST", f"{first.url}/skydns/cluster/members",
                             {"id": "n3", "address": "127.0.0.1:1"})  # fmt: skip
        self.assertEqual(status, 409, body)

    def test_grow_to_five_and_shrink_to_three_under_load(self) -> None:
        """1 -> 3 -> 5 -> 3 while a client keeps registering: every write that
        got a 201 is on every remaining member afterwards."""
        first = self.node("n1").start()
        first.wait_for("/ready")
        join = ["--join", f"127.0.0.1:{first.raft_port}"]
        acknowledged: list[int] = []
        stop = threading.Event()

        def load() -> None:
            n = 1000
            while not stop.is_set():
                n += 1
                try:
                    status, _ = http("PUT", f"{first.url}/skydns/services/u{n}", _service(n),
                                     timeout=5.0)  # fmt: skip
                except OSError:
                    continue
                if status == 201:
                    acknowledged.append(n)

        writer = threading.Thread(target=load)
        writer.start()
        try:
            nodes = [first]
            for name in ("n2", "n3", "n4", "n5"):
                # n4 and n5 ask n2, which forwards to the leader.
                second = ["--join", f"127.0.0.1:{nodes[1].raft_port}"] if len(nodes) > 1 else join
                via = join if name in ("n2", "n3") else second
                nodes.append(self.node(name, *via).start())
                expected = {node.node_id for node in nodes}

                def grown(expected: set[str | None] = expected) -> bool:
                    seen = roles(first)
                    return set(seen) == expected and "learner" not in seen.values()

                wait_until(grown, f"{name} joined and was promoted", 30.0)
            status, body = http("DELETE", f"{first.url}/skydns/cluster/members/n5")
            self.assertEqual(status, 200, body)
            # The command line, through a follower.
            cli = subprocess.run(
                [sys.executable, "-c", "from skydns.cli import main; main()",
                 "--server", nodes[2].url, "cluster", "remove", "n4"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            self.assertEqual(cli.returncode, 0, cli.stdout + cli.stderr)
            wait_until(lambda: set(roles(first)) == {"n1", "n2", "n3"}, "shrunk to three")
        finally:
            stop.set()
            writer.join(10)
        self.assertGreater(len(acknowledged), 20)
        last = acknowledged[-1]
        for node in nodes[:3]:
            wait_until(lambda node=node: self.has(node, last), f"{node.node_id} has the writes")
            missing = [n for n in acknowledged if not self.has(node, n)]
            self.assertEqual(missing, [], node.node_id)


class ConcurrentJoinTests(SynchronousTestCase):
    def test_two_then_four_more_join_at_once(self) -> None:
        """One node, then two started with --join at the same moment, then four
        more: each becomes a voter (issue 26), and a write through any of them
        reaches every other."""
        first = SkyDNSProcess(node_id="n1")
        self.addCleanup(first.cleanup)
        first.start().wait_for("/ready")
        join = ["--join", f"127.0.0.1:{first.raft_port}"]
        members = [first]
        for group in (("n2", "n3"), ("n4", "n5", "n6", "n7")):
            joiners = [SkyDNSProcess(node_id=node_id, extra_args=join) for node_id in group]
            for node in joiners:
                self.addCleanup(node.cleanup)
                node.start(wait=False)
            members += joiners
            want = {m.node_id for m in members}

            def voters(want: set[str] = want) -> bool:
                seen = roles(first)
                return set(seen) == want and "learner" not in seen.values()

            wait_until(voters, f"{', '.join(group)} are voters", 5.0 + 10.0)
            for node in joiners:
                node.wait_for("/ready", 10.0)
        for n, node in enumerate(members):
            status, body = http("PUT", f"{node.url}/skydns/services/j{n}", _service(n))
            self.assertEqual(status, 201, body)
        for n in range(len(members)):
            for node in members:
                wait_until(lambda node=node, n=n: http(
                    "GET", f"{node.url}/skydns/services/j{n}", timeout=2.0)[0] == 200,
                    f"{node.node_id} has j{n}")  # fmt: skip
