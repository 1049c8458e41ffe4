"""Three real `twistd skydns` processes replicating over Raft on loopback,
driven by real HTTP and DNS clients; kill -9 and restarts."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.e2e.harness import SkyDNSProcess, dns_query, free_port, http, start_cluster, status

BOUND = 20.0  # seconds: every wait below is bounded by this


def _service(host: str = "127.0.0.10") -> dict[str, object]:
    return {
        "Name": "rails", "Environment": "production", "Region": "east",
        "Version": "1.0.1", "Host": host, "Port": 8080, "TTL": 600,
    }  # fmt: skip


def wait_until(check: Any, what: str, timeout: float = BOUND) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as e:
            last = e
        else:
            if last:
                return last
        time.sleep(0.05)
    raise AssertionError(f"{what}: not true within {timeout}s (last: {last!r})")


def a_records(node: SkyDNSProcess, name: str) -> list[str]:
    answer = dns_query(name, "A", node.dns_port, timeout=1.0)
    return [r.address for rrset in answer.answer for r in rrset]


def srv_targets(node: SkyDNSProcess, name: str) -> list[str]:
    answer = dns_query(name, "SRV", node.dns_port, timeout=1.0)
    return [r.target.to_text() for rrset in answer.answer for r in rrset]


class _Callbacks(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_DELETE(self) -> None:  # noqa: N802 - http.server's hook name
        length = int(self.headers.get("Content-Length", 0))
        self.received.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class ClusterTests(SynchronousTestCase):
    def start_cluster(self, size: int = 3) -> list[SkyDNSProcess]:
        ids = [f"n{i}" for i in range(1, size + 1)]
        ports = {node_id: free_port() for node_id in ids}
        peers = ",".join(f"{i}=127.0.0.1:{ports[i]}" for i in ids)
        nodes = [
            SkyDNSProcess(extra_args=["--peers", peers], node_id=i, raft_port=ports[i])
            for i in ids
        ]
        for node in nodes:
            self.addCleanup(node.cleanup)
            node.start(wait=False)
        for node in nodes:
            node.wait_for("/ready", BOUND)
        return nodes

    def status(self, node: SkyDNSProcess) -> dict[str, Any]:
        code, body = http("GET", node.url + "/skydns/cluster", timeout=2.0)
        assert code == 200, (code, body)
        assert isinstance(body, dict)
        return body

    def leader_of(self, nodes: list[SkyDNSProcess]) -> SkyDNSProcess:
        def find() -> SkyDNSProcess | None:
            for node in nodes:
                if node.process is None or node.process.poll() is not None:
                    continue
                status = self.status(node)
                if status["leader"] == node.node_id:
                    return node
            return None

        leader: SkyDNSProcess = wait_until(find, "a leader is elected")
        return leader

    def put(self, node: SkyDNSProcess, uuid: str, host: str = "127.0.0.10") -> int:
        code, _ = http("PUT", f"{node.url}/skydns/services/{uuid}", _service(host), timeout=5.0)
        return code

    def present(self, node: SkyDNSProcess, uuid: str) -> bool:
        code, _ = http("GET", f"{node.url}/skydns/services/{uuid}", timeout=2.0)
        return code == 200

    def test_write_on_a_follower_resolves_everywhere(self) -> None:
        """A PUT on a follower is forwarded, answered 201 once applied there
        (read-your-writes), and the name resolves over DNS on every node;
        /skydns/cluster describes the members."""
        nodes = self.start_cluster()
        leader = self.leader_of(nodes)
        follower = next(n for n in nodes if n is not leader)
        self.assertEqual(self.put(follower, "c001", "127.0.0.21"), 201)
        self.assertTrue(self.present(follower, "c001"))
        self.assertEqual(a_records(follower, "c001.skydns.local"), ["127.0.0.21"])
        for node in nodes:
            wait_until(lambda n=node: a_records(n, "c001.skydns.local") == ["127.0.0.21"],
                       f"c001 resolves on {node.node_id}")  # fmt: skip
        self.assertEqual(self.put(leader, "c001"), 409)
        status = self.status(follower)
        self.assertEqual(status["id"], follower.node_id)
        self.assertEqual(status["leader"], leader.node_id)
        roles = sorted(m["role"] for m in status["members"])
        self.assertEqual(roles, ["follower", "follower", "leader"])
        code, body = http("GET", f"{follower.url}/skydns/services/c001?consistent=true")
        self.assertEqual(code, 200, body)
        self.drain_everywhere(nodes, follower)

    def drain_everywhere(self, nodes: list[SkyDNSProcess], follower: SkyDNSProcess) -> None:
        """A drain sent to a follower is a replicated change: c001 leaves
        SRV and A on every node, while GET shows it with "Drain": true;
        undrained, it is back everywhere (RFC 2782 name included)."""
        code, body = http("PATCH", f"{follower.url}/skydns/services/c001", {"Drain": True})
        self.assertEqual((code, body["Drain"]), (200, True), body)
        for node in nodes:
            wait_until(lambda n=node: not a_records(n, "c001.skydns.local")
                       and not srv_targets(n, "rails.production.skydns.local"),
                       f"c001 drained on {node.node_id}")  # fmt: skip
            code, body = http("GET", f"{node.url}/skydns/services/c001", timeout=2.0)
            self.assertEqual((code, body["Drain"]), (200, True), body)
        http("PATCH", f"{follower.url}/skydns/services/c001", {"Drain": False})
        for node in nodes:
            wait_until(lambda n=node: srv_targets(n, "_rails._tcp.production.skydns.local")
                       == ["c001.skydns.local."], f"c001 undrained on {node.node_id}")

    def test_leader_killed_while_clients_write(self) -> None:
        """kill -9 the leader while a client keeps registering through a
        follower: every 2xx registration is on every node afterwards, DNS at a
        follower keeps answering, and the killed node catches up on restart."""
        nodes = self.start_cluster()
        leader = self.leader_of(nodes)
        writer, watcher = [n for n in nodes if n is not leader]
        acked: list[str] = []
        codes: list[int] = []
        dns_failures: list[str] = []
        stop = threading.Event()

        def write() -> None:
            i = 0
            while not stop.is_set() and i < 2000:
                uuid = f"w{i:04d}"
                try:
                    code = self.put(writer, uuid)
                except OSError:
                    code = 0
                codes.append(code)
                if 200 <= code < 300:
                    acked.append(uuid)
                i += 1

        def query() -> None:
            while not stop.is_set():
                try:
                    dns_query("rails.production.skydns.local", "A", watcher.dns_port, timeout=1.0)
                except Exception as e:
                    dns_failures.append(repr(e))
                time.sleep(0.01)

        threads = [threading.Thread(target=write), threading.Thread(target=query)]
        for thread in threads:
            thread.start()
        try:
            wait_until(lambda: len(acked) >= 20, "writes before the kill")
            leader.kill()
            before = len(acked)
            wait_until(lambda: len(acked) >= before + 20, "writes after the kill")
        finally:
            stop.set()
            for thread in threads:
                thread.join(BOUND)
        self.assertEqual(dns_failures, [])
        survivors = [writer, watcher]
        for node in survivors:
            for uuid in acked:
                wait_until(lambda n=node, u=uuid: self.present(n, u), f"{uuid} on {node.node_id}")
        new_leader = self.leader_of(survivors)
        self.assertNotEqual(new_leader, leader)
        # The new leader says the killed node is down; `skydns cluster status` shows it.
        wait_until(lambda: {m["id"]: m.get("reachable") for m in self.status(new_leader)[
            "members"]}.get(leader.node_id) is False, "the dead node shown unreachable")
        shown = subprocess.run([sys.executable, "-m", "skydns.cli", "--server", new_leader.url,
                                "cluster", "status"], capture_output=True, text=True,
                               timeout=BOUND, stdin=subprocess.DEVNULL).stdout  # fmt: skip
        self.assertRegex(shown, rf"{leader.node_id}\s+\S+\s+follower \(unreachable\)")
        leader.start(wait=False)
        leader.wait_for("/ready", BOUND)
        missing = [u for u in acked if not self.present(leader, u)]
        self.assertEqual(missing, [], "the restarted node caught up")

    def test_lease_expiry_is_replicated_and_its_callback_sent_once(self) -> None:
        """A lapsed lease is removed on every node (by the leader's Expire
        command); the callback is sent once, and not again when every node
        is killed and restarts and replays its log."""
        _Callbacks.received = []
        port = free_port()
        server = HTTPServer(("127.0.0.1", port), _Callbacks)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        nodes = self.start_cluster()
        leader = self.leader_of(nodes)
        follower = next(n for n in nodes if n is not leader)
        body = dict(_service(), TTL=1)
        self.assertEqual(http("PUT", f"{follower.url}/skydns/services/x1", body)[0], 201)
        callback = {"Name": "rails", "Environment": "production", "Reply": "127.0.0.1",
                    "Port": port}  # fmt: skip
        self.assertEqual(http("PUT", f"{follower.url}/skydns/callbacks/cb1", callback)[0], 201)
        for node in nodes:
            wait_until(lambda n=node: not self.present(n, "x1"), f"x1 gone on {node.node_id}")
        wait_until(lambda: _Callbacks.received, "the callback arrives")
        for node in nodes:
            node.kill()
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            node.wait_for("/ready", BOUND)
        time.sleep(1.0)
        self.assertEqual(len(_Callbacks.received), 1, _Callbacks.received)
        path, payload = _Callbacks.received[0]
        self.assertEqual(path, "/skydns/callbacks/cb1")
        self.assertEqual(json.loads(payload)["UUID"], "x1")
        for node in nodes:
            self.assertFalse(self.present(node, "x1"))

    def test_kill_all_and_restart(self) -> None:
        """kill -9 all three nodes and restart them: the registry is intact."""
        nodes = self.start_cluster()
        leader = self.leader_of(nodes)
        uuids = [f"k{i}" for i in range(10)]
        for i, uuid in enumerate(uuids):
            self.assertEqual(self.put(nodes[i % 3], uuid), 201)
        self.assertEqual(http("DELETE", f"{leader.url}/skydns/services/k3")[0], 200)
        for node in nodes:
            node.kill()
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            node.wait_for("/ready", BOUND)
        for node in nodes:
            for uuid in uuids:
                self.assertEqual(self.present(node, uuid), uuid != "k3", (node.node_id, uuid))


class OneNodeTests(SynchronousTestCase):
    def test_one_node_survives_kill(self) -> None:
        """The one-node default is a one-voter cluster with a durable log: its
        registrations survive kill -9 and restart."""
        node = SkyDNSProcess()
        self.addCleanup(node.cleanup)
        node.start()
        node.wait_for("/ready", BOUND)
        for uuid in ("s1", "s2"):
            code, _ = http("PUT", f"{node.url}/skydns/services/{uuid}", _service())
            self.assertEqual(code, 201)
        code, _ = http("PATCH", f"{node.url}/skydns/services/s1", {"TTL": 900})
        self.assertEqual(code, 200)
        node.kill()
        node.start()
        node.wait_for("/ready", BOUND)
        code, body = http("GET", f"{node.url}/skydns/services/s1")
        self.assertEqual(code, 200, body)
        self.assertGreater(body["TTL"], 600)
        self.assertEqual(http("GET", f"{node.url}/skydns/services/s2")[0], 200)
        status = http("GET", f"{node.url}/skydns/cluster")[1]
        self.assertEqual(status["leader"], status["id"])


class StarvedFollowerTests(SynchronousTestCase):
    def test_a_starved_follower_causes_no_election(self) -> None:
        """A follower that gets the CPU only now and then (stopped for up to
        1.5 election timeouts at a time, for three seconds) costs no election:
        the leader and its term stay, and the follower catches up after."""
        import os
        import signal

        nodes = start_cluster(self)
        first = status(nodes[0])
        leader, term = first["leader"], first["term"]
        follower = next(n for n in nodes if n.node_id != leader)
        assert follower.process is not None
        deadline = time.monotonic() + 3.0
        try:
            while time.monotonic() < deadline:
                os.kill(follower.process.pid, signal.SIGSTOP)
                time.sleep(0.75)
                os.kill(follower.process.pid, signal.SIGCONT)
                time.sleep(0.05)
        finally:
            os.kill(follower.process.pid, signal.SIGCONT)
        code, _ = http("PUT", f"{nodes[0].url}/skydns/services/after", _service())
        self.assertEqual(code, 201)
        wait_until(lambda: a_records(follower, "after.skydns.local"), "the follower caught up")
        for node in nodes:
            now = status(node)
            self.assertEqual((now["leader"], now["term"]), (leader, term), node.node_id)
