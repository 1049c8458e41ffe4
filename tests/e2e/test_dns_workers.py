"""``--dns-workers`` with real processes: workers answer DNS on the node's
address from their own copy of the registry, see every change within
milliseconds, are started again when they die, and end with the node."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import dns.rcode
from twisted.trial.unittest import SynchronousTestCase

from tests.e2e.harness import SkyDNSProcess, dns_query, http
from tests.e2e.test_cluster import wait_until


def worker_pids(node: SkyDNSProcess) -> list[int]:
    """The node's worker processes (its children running the worker module)."""
    assert node.process is not None
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(node.process.pid)],
                         capture_output=True, text=True).stdout  # fmt: skip
    return [int(line.split()[0]) for line in out.splitlines() if "skydns.dns.workers.main" in line]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie not yet reaped by its parent is gone too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


class DNSWorkersTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.node = SkyDNSProcess(["--no-forward", "--dns-workers", "2"])
        self.addCleanup(self.node.cleanup)
        self.node.start()
        self.node.wait_for("/ready")
        wait_until(lambda: len(worker_pids(self.node)) == 2, "two workers started", 20.0)
        wait_until(lambda: self.node.log().count("answering DNS on") >= 2, "workers listening")

    def put(self, uuid: str) -> None:
        status, body = http("PUT", f"{self.node.url}/skydns/services/{uuid}",
                            {"Name": "web", "Environment": "production", "Host": "10.0.0.7",
                             "Port": 80, "TTL": 600})  # fmt: skip
        self.assertEqual(status, 201, body)

    def answered(self, name: str, queries: int = 24) -> bool:
        """Whether ``queries`` questions, each from a new socket (so spread
        over the node and its workers), all find ``name``."""
        return all(dns_query(name, "A", self.node.dns_port, timeout=2.0).answer
                   for _ in range(queries))  # fmt: skip

    def test_workers_answer_every_change(self) -> None:
        for n in range(10):
            self.put(f"w{n}")
            started = time.monotonic()
            wait_until(lambda n=n: self.answered(f"w{n}.skydns.local"), "all answer", 5.0)
            self.assertLess(time.monotonic() - started, 1.0)
        status, _ = http("DELETE", f"{self.node.url}/skydns/services/w0")
        self.assertEqual(status, 200)
        wait_until(lambda: all(
            dns_query("w0.skydns.local", "A", self.node.dns_port).rcode() == dns.rcode.NXDOMAIN
            for _ in range(24)), "the removal everywhere", 5.0)  # fmt: skip
        # Workers answer alone: with the node stopped, some questions still
        # reach a worker (the kernel spreads them over the sockets).
        assert self.node.process is not None
        os.kill(self.node.process.pid, signal.SIGSTOP)
        try:
            found = 0
            for _ in range(20):
                try:
                    found += bool(dns_query("w1.skydns.local", "A", self.node.dns_port,
                                            timeout=0.3).answer)  # fmt: skip
                except Exception:
                    pass
            self.assertGreater(found, 0)
        finally:
            os.kill(self.node.process.pid, signal.SIGCONT)

    def test_metrics_count_every_process(self) -> None:
        """The node's skydns_dns_requests_total counts the workers' answers
        too: with 300 questions asked, the total reaches 300 within seconds."""
        self.put("counted")
        for _ in range(300):
            dns_query("counted.skydns.local", "A", self.node.dns_port, timeout=2.0)

        def requests() -> float:
            status, text = http("GET", f"{self.node.url}/metrics", timeout=2.0)
            assert status == 200
            return sum(float(line.rsplit(" ", 1)[1]) for line in str(text).splitlines()
                       if line.startswith("skydns_dns_requests_total{"))  # fmt: skip

        wait_until(lambda: requests() >= 300, "every answer counted", 10.0)

    def test_a_dead_worker_is_started_again_and_all_end_with_the_node(self) -> None:
        first = worker_pids(self.node)
        os.kill(first[0], signal.SIGKILL)
        wait_until(lambda: len(worker_pids(self.node)) == 2 and first[0] not in
                   worker_pids(self.node), "the worker started again", 10.0)  # fmt: skip
        self.put("after")
        wait_until(lambda: self.answered("after.skydns.local"), "the new worker answers", 5.0)
        workers = worker_pids(self.node)
        self.node.kill()  # kill -9: the workers' feed ends, and so do they
        wait_until(lambda: not any(alive(pid) for pid in workers), "workers ended", 10.0)
