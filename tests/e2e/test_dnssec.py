"""Online DNSSEC checked by a real validating resolver (SPEC.md §8): unbound
with SkyDNS's DNSKEY as its trust anchor and a stub zone pointing at a node
started with --dnssec-key.  Answers validate (AD); a tampered one does not
(SERVFAIL).  Skips where unbound is not installed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from skydns.dnssec.keys import ECDSAP256SHA256, generate
from tests.e2e.harness import SkyDNSProcess, free_port, http
from tests.e2e.test_behind_unbound import ROOT_HINTS, UNBOUND_CONF


def ask(port: int, name: str, rdtype: str) -> Any:
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=5.0)


class Tamperer:
    """A UDP relay to a DNS server that changes every 10.0.0.1 in answers
    into 10.6.6.6 (a forged address the signature does not cover)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                data, client = self.sock.recvfrom(65535)
            except OSError:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
                out.settimeout(2)
                out.sendto(data, ("127.0.0.1", self.target))
                try:
                    reply, _ = out.recvfrom(65535)
                except OSError:
                    continue
            self.sock.sendto(reply.replace(bytes([10, 0, 0, 1]), bytes([10, 6, 6, 6])), client)


class ValidationTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.unbound = shutil.which("unbound") or (
            "/usr/sbin/unbound" if os.path.exists("/usr/sbin/unbound") else None)
        if self.unbound is None:
            raise SkipTest("unbound is not installed (Debian package unbound)")
        self.directory = tempfile.mkdtemp(prefix="skydns-dnssec-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.key, base = generate("skydns.local", ECDSAP256SHA256, self.directory)
        self.node = SkyDNSProcess(["--no-forward", "--dnssec-key", base + ".private"])
        self.addCleanup(self.node.cleanup)
        self.node.start()
        self.node.wait_for("/ready")
        code, _ = http("PUT", f"{self.node.url}/skydns/services/r1",
                       {"Name": "rails", "Environment": "production", "Host": "10.0.0.1",
                        "Port": 8080, "TTL": 600})  # fmt: skip
        self.assertEqual(code, 201)
        code, _ = http("PUT", f"{self.node.url}/skydns/services/r6",
                       {"Name": "rails", "Environment": "production", "Host": "2001:db8::6",
                        "Port": 8080, "TTL": 600})  # fmt: skip
        self.assertEqual(code, 201)

    def start_unbound(self, upstream: int) -> int:
        port = free_port()
        directory = tempfile.mkdtemp(prefix="skydns-unbound-", dir=self.directory)
        with open(os.path.join(directory, "root.hints"), "w") as f:
            f.write(ROOT_HINTS)
        conf = os.path.join(directory, "unbound.conf")
        with open(conf, "w") as f:
            f.write(UNBOUND_CONF.format(
                port=port, directory=directory, skydns_port=upstream,
                modules="validator iterator", trust=f'trust-anchor: "{self.key.dnskey_text()}"',
            ))  # fmt: skip
        process = subprocess.Popen([self.unbound, "-d", "-c", conf])
        self.addCleanup(lambda: (process.terminate(), process.wait(10)))
        deadline = time.monotonic() + 15
        while True:
            try:
                ask(port, "skydns.local", "SOA")
                return port
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("unbound did not start") from None
                time.sleep(0.2)

    def test_answers_and_denials_validate(self) -> None:
        """SRV, A, AAAA, a name that does not exist and a type a name does
        not have, through unbound: AD set; DNSKEY at the apex validates too."""
        port = self.start_unbound(self.node.dns_port)
        for name, rdtype, rcode in (("rails.production.skydns.local", "SRV", dns.rcode.NOERROR),
                                    ("r1.skydns.local", "A", dns.rcode.NOERROR),
                                    ("r6.skydns.local", "AAAA", dns.rcode.NOERROR),
                                    ("rails.production.skydns.local", "AAAA", dns.rcode.NOERROR),
                                    ("nope.production.skydns.local", "A", dns.rcode.NOERROR),
                                    ("rails.production.skydns.local", "TXT", dns.rcode.NOERROR),
                                    ("skydns.local", "DNSKEY", dns.rcode.NOERROR)):  # fmt: skip
            answer = ask(port, name, rdtype)
            self.assertEqual(answer.rcode(), rcode, (name, rdtype))
            self.assertTrue(answer.flags & dns.flags.AD, (name, rdtype, answer.to_text()))
        addresses = [r.address for rrset in ask(port, "r1.skydns.local", "A").answer
                     for r in rrset if hasattr(r, "address")]  # fmt: skip
        self.assertEqual(addresses, ["10.0.0.1"])

    def test_a_tampered_answer_is_refused(self) -> None:
        """Between unbound and SkyDNS, an answer's address is changed:
        unbound answers SERVFAIL, not the forged address."""
        tamperer = Tamperer(self.node.dns_port)
        self.addCleanup(tamperer.stopping.set)
        port = self.start_unbound(tamperer.port)
        answer = ask(port, "r1.skydns.local", "A")
        self.assertEqual(answer.rcode(), dns.rcode.SERVFAIL, answer.to_text())

    def test_kdig_or_delv_agree(self) -> None:
        delv = shutil.which("delv")
        if delv is None:
            self.skipTest("delv is not installed (Debian: bind9-dnsutils)")
        anchor = os.path.join(self.directory, "anchor.conf")
        with open(anchor, "w") as f:
            public = self.key.dnskey_text().split(" IN DNSKEY ")[1]
            flags, protocol, algorithm, key = public.split(" ", 3)
            f.write(f'trust-anchors {{ skydns.local. static-key {flags} {protocol} '
                    f'{algorithm} "{key}"; }};\n')  # fmt: skip
        out = subprocess.run([delv, "@127.0.0.1", "-p", str(self.node.dns_port), "-a", anchor,
                              "+root=skydns.local", "r1.skydns.local", "A"],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
        self.assertIn("; fully validated", out.stdout, out.stdout + out.stderr)
