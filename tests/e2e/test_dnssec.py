"""Online DNSSEC checked by a real validating resolver (SPEC.md §8): unbound
with SkyDNS's DNSKEY as its trust anchor and stub zones (the domain, and two
reverse zones) pointing at a node started with --dnssec-key.  Answers
validate (AD); a tampered one, or one whose signatures have expired, does
not (SERVFAIL).  Skips where unbound is not installed."""

from __future__ import annotations

import ipaddress
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
from attrs import evolve
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from skydns.dnssec.keys import ECDSAP256SHA256, generate
from tests.e2e.harness import SkyDNSProcess, free_port, http
from tests.e2e.test_behind_unbound import ROOT_HINTS, UNBOUND_CONF

#: The reverse zones the node is the authority for (--reverse-zone).
REVERSE_ZONES = ("0.10.in-addr.arpa", "8.b.d.0.1.0.0.2.ip6.arpa")
V6_PTR = ipaddress.ip_address("2001:db8::6").reverse_pointer
#: The empty zones unbound serves itself (RFC 6303) that hold them.
UNBOUND_DEFAULT_ZONES = ("10.in-addr.arpa", "8.b.d.0.1.0.0.2.ip6.arpa")


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
        self.node = SkyDNSProcess(["--no-forward", "--dnssec-key", base + ".private",
                                   "--reverse-zone", ",".join(REVERSE_ZONES)])
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

    def start_unbound(self, upstream: int, extra: str = "") -> int:
        port = free_port()
        directory = tempfile.mkdtemp(prefix="skydns-unbound-", dir=self.directory)
        with open(os.path.join(directory, "root.hints"), "w") as f:
            f.write(ROOT_HINTS)
        conf = os.path.join(directory, "unbound.conf")
        # The domain and each reverse zone: a trust anchor (the same key
        # under the zone's name), unbound's own empty zone for private and
        # documentation addresses (RFC 6303) off, a stub zone to SkyDNS.
        trust = "\n  ".join(
            [f'trust-anchor: "{self.key.dnskey_text()}"']
            + [f'trust-anchor: "{evolve(self.key, zone=zone).dnskey_text()}"'
               for zone in REVERSE_ZONES]
            + [f'local-zone: "{zone}." nodefault' for zone in UNBOUND_DEFAULT_ZONES]
            + ([extra] if extra else []))  # fmt: skip
        stubs = "".join(f'stub-zone:\n  name: "{zone}"\n  stub-addr: 127.0.0.1@{upstream}\n'
                        for zone in REVERSE_ZONES)  # fmt: skip
        with open(conf, "w") as f:
            f.write(UNBOUND_CONF.format(
                port=port, directory=directory, skydns_port=upstream,
                modules="validator iterator", trust=trust,
            ) + stubs)  # fmt: skip
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
        """SRV, A, AAAA, PTR, a name that does not exist, a type a name does
        not have, wildcard-looking names and empty non-terminals, through
        unbound: AD set; DNSKEY at the apex validates too."""
        port = self.start_unbound(self.node.dns_port)
        for name, rdtype, rcode in (("rails.production.skydns.local", "SRV", dns.rcode.NOERROR),
                                    ("r1.skydns.local", "A", dns.rcode.NOERROR),
                                    ("r6.skydns.local", "AAAA", dns.rcode.NOERROR),
                                    ("rails.production.skydns.local", "AAAA", dns.rcode.NOERROR),
                                    ("nope.production.skydns.local", "A", dns.rcode.NOERROR),
                                    ("rails.production.skydns.local", "TXT", dns.rcode.NOERROR),
                                    ("skydns.local", "DNSKEY", dns.rcode.NOERROR),
                                    ("*.production.skydns.local", "SRV", dns.rcode.NOERROR),
                                    ("*.nope.skydns.local", "A", dns.rcode.NOERROR),
                                    ("production.skydns.local", "A", dns.rcode.NOERROR),
                                    ("1.0.0.10.in-addr.arpa", "PTR", dns.rcode.NOERROR),
                                    (V6_PTR, "PTR", dns.rcode.NOERROR),
                                    ("2.0.0.10.in-addr.arpa", "PTR", dns.rcode.NOERROR),
                                    ("0.0.10.in-addr.arpa", "PTR", dns.rcode.NOERROR),
                                    ("1.0.0.10.in-addr.arpa", "TXT", dns.rcode.NOERROR),
                                    ("0.10.in-addr.arpa", "SOA", dns.rcode.NOERROR)):  # fmt: skip
            answer = ask(port, name, rdtype)
            self.assertEqual(answer.rcode(), rcode, (name, rdtype))
            self.assertTrue(answer.flags & dns.flags.AD, (name, rdtype, answer.to_text()))
        addresses = [r.address for rrset in ask(port, "r1.skydns.local", "A").answer
                     for r in rrset if hasattr(r, "address")]  # fmt: skip
        self.assertEqual(addresses, ["10.0.0.1"])
        targets = [r.target.to_text() for rrset in ask(port, V6_PTR, "PTR").answer
                   for r in rrset if hasattr(r, "target")]  # fmt: skip
        self.assertEqual(targets, ["r6.skydns.local."])

    def test_a_tampered_answer_is_refused(self) -> None:
        """Between unbound and SkyDNS, an answer's address is changed:
        unbound answers SERVFAIL, not the forged address."""
        tamperer = Tamperer(self.node.dns_port)
        self.addCleanup(tamperer.stopping.set)
        port = self.start_unbound(tamperer.port)
        answer = ask(port, "r1.skydns.local", "A")
        self.assertEqual(answer.rcode(), dns.rcode.SERVFAIL, answer.to_text())

    def test_an_expired_signature_is_refused(self) -> None:
        """unbound told it is eight days later (its val-override-date): the
        signatures, valid for seven days, have expired, and it answers
        SERVFAIL for the domain's names and the reverse zone's."""
        later = time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() + 8 * 86400))
        port = self.start_unbound(self.node.dns_port, f'val-override-date: "{later}"')
        for name, rdtype in (("r1.skydns.local", "A"), ("1.0.0.10.in-addr.arpa", "PTR")):
            answer = ask(port, name, rdtype)
            self.assertEqual(answer.rcode(), dns.rcode.SERVFAIL, answer.to_text())

    def test_delv_agrees(self) -> None:
        """BIND's delv, with the key as its only trust anchor, fully
        validates an A answer of the domain and a PTR of a reverse zone."""
        delv = shutil.which("delv")
        if delv is None:
            self.skipTest("delv is not installed (Debian: bind9-dnsutils)")
        for zone, name, rdtype in (("skydns.local", "r1.skydns.local", "A"),
                                   (REVERSE_ZONES[0], "1.0.0.10.in-addr.arpa", "PTR")):  # fmt: skip
            anchor = os.path.join(self.directory, f"anchor-{zone}.conf")
            with open(anchor, "w") as f:
                public = self.key.dnskey_text().split(" IN DNSKEY ")[1]
                flags, protocol, algorithm, key = public.split(" ", 3)
                f.write(f'trust-anchors {{ {zone}. static-key {flags} {protocol} '
                        f'{algorithm} "{key}"; }};\n')  # fmt: skip
            out = subprocess.run([delv, "@127.0.0.1", "-p", str(self.node.dns_port), "-a",
                                  anchor, f"+root={zone}", name, rdtype],
                                 capture_output=True, text=True, timeout=30)  # fmt: skip
            self.assertIn("; fully validated", out.stdout, out.stdout + out.stderr)
