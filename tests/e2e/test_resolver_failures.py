"""A real node forwarding to loopback upstreams that fail (SPEC.md §9):
forward zones, upstreams that go silent, stale answers."""

from __future__ import annotations

import time
from typing import Any

from twisted.names import dns as tdns

from tests.dns_fakes import response_to
from tests.e2e.test_resolver import ResolverTestCase, addresses, ask, rcode


def answering_with(address: str, ttl: int = 300) -> Any:
    """A handler answering every A question with one ``address``."""

    def handle(query: tdns.Message, tcp: bool) -> tdns.Message:
        response = response_to(query)
        name = query.queries[0].name.name
        response.answers = [tdns.RRHeader(name, tdns.A, tdns.IN, ttl,
                                          tdns.Record_A(address, ttl))]  # fmt: skip
        return response

    return handle


class Switch:
    """A handler that answers while ``up`` and says nothing otherwise."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.up = True

    def __call__(self, query: tdns.Message, tcp: bool) -> tdns.Message | None:
        return self.handler(query, tcp) if self.up else None


class ForwardZoneTests(ResolverTestCase):
    def test_a_zone_goes_to_its_own_servers(self) -> None:
        """--forward-zone corp.test=...: corp.test names are answered by
        that upstream, every other name by --nameserver."""
        _, corp = self.upstream(answering_with("10.1.1.1"))
        _, rest = self.upstream(answering_with("10.2.2.2"))
        node = self.skydns("--nameserver", rest, "--forward-zone", f"corp.test={corp}")
        self.assertEqual(addresses(ask("db.corp.test", "A", node.dns_port)), ["10.1.1.1"])
        self.assertEqual(addresses(ask("www.example.org", "A", node.dns_port)), ["10.2.2.2"])


class FailingUpstreamTests(ResolverTestCase):
    def test_a_silent_upstream_costs_one_timeout_not_one_per_question(self) -> None:
        """The first question waits for the upstream's timeout; once it is
        known down, others are answered SERVFAIL in milliseconds."""
        switch = Switch(answering_with("10.3.3.3"))
        switch.up = False
        _, upstream = self.upstream(switch)
        node = self.skydns("--nameserver", upstream)
        self.assertEqual(rcode(ask("first.example.org", "A", node.dns_port)), tdns.ESERVER)
        started = time.monotonic()
        answer = ask("second.example.org", "A", node.dns_port)
        self.assertEqual(rcode(answer), tdns.ESERVER)
        self.assertLess(time.monotonic() - started, 0.1)

    def test_recovery_is_noticed_within_seconds(self) -> None:
        """An upstream that comes back answers again within about a second
        (the probe that goes to a down upstream once a second)."""
        switch = Switch(answering_with("10.6.6.6"))
        switch.up = False
        _, upstream = self.upstream(switch)
        node = self.skydns("--nameserver", upstream)
        ask("down.example.org", "A", node.dns_port)  # times out: known down
        switch.up = True
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if addresses(ask(f"up{time.monotonic()}.example.org", "A", node.dns_port)):
                break
            time.sleep(0.2)
        else:
            self.fail("the upstream's return went unnoticed for 5 s")

    def test_dead_and_servfail_upstreams_fail_fast(self) -> None:
        """An upstream with nothing listening (refused) and one answering
        SERVFAIL: SERVFAIL within 100 ms, remembered for the next asker."""
        from tests.dns_fakes import failing
        from tests.e2e.harness import free_port

        dead = f"127.0.0.1:{free_port()}"
        _, servfail = self.upstream(failing(tdns.ESERVER))
        for upstream in (dead, servfail):
            node = self.skydns("--nameserver", upstream)
            for name in ("a.example.org", "a.example.org", "b.example.org"):
                started = time.monotonic()
                self.assertEqual(rcode(ask(name, "A", node.dns_port)), tdns.ESERVER)
                self.assertLess(time.monotonic() - started, 0.1, (upstream, name))

    def test_stale_answers_while_the_upstream_is_gone(self) -> None:
        """A cached name whose TTL ran out keeps resolving, with TTL 30, after
        its upstream went silent."""
        switch = Switch(answering_with("10.4.4.4", ttl=1))
        _, upstream = self.upstream(switch)
        node = self.skydns("--nameserver", upstream)
        self.assertEqual(addresses(ask("www.example.org", "A", node.dns_port)), ["10.4.4.4"])
        switch.up = False
        time.sleep(1.2)  # the TTL runs out
        stale = ask("www.example.org", "A", node.dns_port)
        self.assertEqual(addresses(stale), ["10.4.4.4"])
        self.assertEqual([rrset.ttl for rrset in stale.answer], [30])

    def test_serve_stale_zero_turns_it_off(self) -> None:
        switch = Switch(answering_with("10.5.5.5", ttl=1))
        _, upstream = self.upstream(switch)
        node = self.skydns("--nameserver", upstream, "--serve-stale", "0")
        ask("www.example.org", "A", node.dns_port)
        switch.up = False
        time.sleep(1.2)
        self.assertEqual(rcode(ask("www.example.org", "A", node.dns_port)), tdns.ESERVER)


#: Run inside fresh network, mount and PID namespaces (as root): SkyDNS on
#: 127.0.0.1:53 as the host's only nameserver, its upstream black-holed,
#: glibc (getent) reading a resolv.conf bound over /etc/resolv.conf.
GLIBC_DRIVER = r"""
import json, os, socket, subprocess, sys, time, urllib.request
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
work = sys.argv[1]
with open(os.path.join(work, "resolv.conf"), "w") as f:
    f.write("nameserver 127.0.0.1\nsearch skydns.local\noptions timeout:2 attempts:2\n")
subprocess.run(["mount", "--bind", os.path.join(work, "resolv.conf"), "/etc/resolv.conf"],
               check=True)
hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # an upstream that never answers
hole.bind(("127.0.0.53", 53))
node = subprocess.Popen(sys.argv[2:] + [
    "--dns", "127.0.0.1:53", "--http", "tcp:8080:interface=127.0.0.1",
    "--raft", "tcp:7070:interface=127.0.0.1", "--data-dir", os.path.join(work, "data"),
    "--nameserver", "127.0.0.53:53"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.monotonic() + 30
while True:
    try:
        urllib.request.urlopen("http://127.0.0.1:8080/ready", timeout=1)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("skydns did not become ready")
        time.sleep(0.1)
body = json.dumps({"Name": "rails", "Environment": "production", "Host": "10.0.0.1",
                   "Port": 80, "TTL": 600}).encode()
urllib.request.urlopen(urllib.request.Request(
    "http://127.0.0.1:8080/skydns/services/1001", data=body, method="PUT"), timeout=5)
def timed(name):
    started = time.monotonic()
    done = subprocess.run(["getent", "hosts", name], capture_output=True, text=True)
    return {"seconds": time.monotonic() - started, "code": done.returncode,
            "out": done.stdout.strip()}
result = {"first": timed("www.example.org"), "forwarded": timed("other.example.org"),
          "registered": timed("1001.skydns.local"), "short": timed("rails.production")}
node.terminate()
print("RESULT " + json.dumps(result))
"""


class GlibcTests(ResolverTestCase):
    def test_glibc_with_every_upstream_black_holed(self) -> None:
        """getent (glibc) through SkyDNS as the only nameserver, its
        upstream silent: once the first failure is seen, a forwarded name
        fails within 100 ms, a registered name answers within 50 ms, and a
        short name found through `search skydns.local` within 100 ms."""
        import json
        import os
        import shutil
        import subprocess
        import sys
        import tempfile

        from tests.e2e.harness import TWISTD

        if os.getuid() != 0 or shutil.which("unshare") is None or shutil.which("getent") is None:
            self.skipTest("needs root, unshare and getent (private namespaces for glibc)")
        work = tempfile.mkdtemp(prefix="skydns-glibc-")
        self.addCleanup(shutil.rmtree, work, True)
        run = subprocess.run(
            ["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc",
             sys.executable, "-c", GLIBC_DRIVER, work, *TWISTD, "--nodaemon", "--pidfile=",
             "skydns"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        lines = [x for x in run.stdout.splitlines() if x.startswith("RESULT ")]
        if not lines and "Operation not permitted" in run.stderr:
            self.skipTest(f"cannot make namespaces here: {run.stderr.strip()[:200]}")
        self.assertTrue(lines, run.stdout[-2000:] + run.stderr[-3000:])
        result = json.loads(lines[0][len("RESULT "):])
        self.assertNotEqual(result["first"]["code"], 0)
        self.assertNotEqual(result["forwarded"]["code"], 0)
        self.assertLess(result["forwarded"]["seconds"], 0.1, result)
        self.assertEqual((result["registered"]["code"], result["registered"]["out"].split()[0]),
                         (0, "10.0.0.1"))  # fmt: skip
        self.assertLess(result["registered"]["seconds"], 0.05, result)
        self.assertEqual(result["short"]["code"], 0, result)
        self.assertLess(result["short"]["seconds"], 0.1, result)


class DNSOverTLSTests(ResolverTestCase):
    """--dns-tls serves DNS over TLS; a tls://IP:PORT#NAME upstream is asked
    over TLS with its certificate checked (two real nodes on loopback)."""

    def setUp(self) -> None:
        import tempfile

        from tests.e2e.certs import issue
        from tests.e2e.harness import free_port, http

        self.directory = tempfile.mkdtemp(prefix="skydns-dot-")
        self.ca = issue(self.directory, "test-ca", ip=None)
        leaf = issue(self.directory, "dot.test", ca=self.ca)
        self.tls_port = free_port()
        # The upstream: authoritative for corp.test, serving DNS over TLS.
        self.corp = self.skydns("--domain", "corp.test", "--no-forward",
                                "--dns-tls", f"127.0.0.1:{self.tls_port}",
                                "--dns-tls-cert", leaf.cert_path,
                                "--dns-tls-key", leaf.key_path)  # fmt: skip
        code, _ = http("PUT", f"{self.corp.url}/skydns/services/c1",
                       {"Name": "db", "Environment": "prod", "Host": "10.7.7.7", "Port": 5432})
        self.assertEqual(code, 201)

    def test_served_over_tls(self) -> None:
        import ssl

        import dns.message
        import dns.query

        context = ssl.create_default_context(cafile=self.ca.cert_path)
        query = dns.message.make_query("db.prod.corp.test", "A")
        answer = dns.query.tls(query, "127.0.0.1", port=self.tls_port, timeout=5,
                               ssl_context=context, server_hostname="dot.test")  # fmt: skip
        self.assertEqual(addresses(answer), ["10.7.7.7"])

    def test_kdig_over_tls(self) -> None:
        import shutil
        import subprocess

        kdig = shutil.which("kdig")
        if kdig is None:
            self.skipTest("kdig is not installed (Debian: knot-dnsutils)")
        out = subprocess.run([kdig, "@127.0.0.1", "-p", str(self.tls_port), "+tls",
                              f"+tls-ca={self.ca.cert_path}", "+tls-hostname=dot.test",
                              "db.prod.corp.test", "A"], capture_output=True, text=True,
                             timeout=30)  # fmt: skip
        self.assertIn("10.7.7.7", out.stdout, out.stdout + out.stderr)

    def test_forwarding_over_tls_checks_the_certificate(self) -> None:
        """A node forwarding corp.test to tls://…#dot.test gets the answer;
        with #wrong.test (a name the certificate is not for) it gets none."""
        ca = ["--forward-tls-ca", self.ca.cert_path, "--nameserver", "127.0.0.1:9"]
        good = self.skydns(*ca, "--forward-zone",
                           f"corp.test=tls://127.0.0.1:{self.tls_port}#dot.test")  # fmt: skip
        self.assertEqual(addresses(ask("db.prod.corp.test", "A", good.dns_port)), ["10.7.7.7"])
        wrong = self.skydns(*ca, "--forward-zone",
                            f"corp.test=tls://127.0.0.1:{self.tls_port}#wrong.test")  # fmt: skip
        self.assertEqual(rcode(ask("db.prod.corp.test", "A", wrong.dns_port)), tdns.ESERVER)
