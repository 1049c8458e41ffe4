"""SkyDNS as a host's resolver, end to end: a real `twistd skydns` process,
real DNS clients (dnspython, raw sockets), fake upstreams on loopback
(`tests.dns_fakes.ThreadedUpstream`) and nsd as a real upstream."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from typing import Any
from unittest import SkipTest, mock

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename
from twisted.names import dns as tdns
from twisted.trial.unittest import SynchronousTestCase

from tests.dns_fakes import (
    NSD_CONF,
    NSD_ZONE,
    Handler,
    ThreadedUpstream,
    answering,
    nxdomain,
    silent,
)
from tests.e2e.harness import TWISTD, SkyDNSProcess, free_port, http


def zone(query: tdns.Message, tcp: bool) -> tdns.Message | None:
    """The fake upstream's world: ``nx*`` names do not exist (SOA minimum 60),
    ``silent*`` names are never answered, every other name has two A records
    with TTL 300."""
    name = query.queries[0].name.name.lower()
    if name.startswith(b"nx"):
        return nxdomain(b"example.org", ttl=3600, minimum=60)(query, tcp)
    if name.startswith(b"silent"):
        return None
    return answering(count=2, ttl=300)(query, tcp)


def ask(
    name: str,
    rdtype: str,
    port: int,
    host: str = "127.0.0.1",
    tcp: bool = False,
    timeout: float = 8.0,
    **make: Any,
) -> Any:
    """One dnspython query to ``host:port``; returns the response message."""
    query = dns.message.make_query(name, rdtype, **make)
    if tcp:
        return dns.query.tcp(query, host, port=port, timeout=timeout)
    return dns.query.udp(query, host, port=port, timeout=timeout)


def udp_exchange(query: Any, port: int, timeout: float = 5.0) -> bytes:
    """``query`` (a dnspython message) over UDP; the reply's raw bytes."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(query.to_wire(), ("127.0.0.1", port))
        data, _ = sock.recvfrom(65535)
        return data


def read_tcp_message(sock: socket.socket) -> bytes:
    """One length-prefixed DNS message from a TCP socket (RFC 1035 §4.2.2)."""

    def exactly(count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = sock.recv(count - len(data))
            if not chunk:
                raise EOFError("connection closed")
            data += chunk
        return data

    (size,) = struct.unpack("!H", exactly(2))
    return exactly(size)


def rcode(response: Any) -> int:
    return int(response.rcode())


def has(response: Any, flag: int) -> bool:
    return bool(response.flags & flag)


def addresses(response: Any) -> list[str]:
    return sorted(r.address for rrset in response.answer for r in rrset if hasattr(r, "address"))


def service(host: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Name": "rails", "Environment": "production", "Region": "east",
        "Version": "1.0.1", "Host": host, "Port": 8080, "TTL": 300,
    }  # fmt: skip
    body.update(fields)
    return body


class ResolverTestCase(SynchronousTestCase):
    def upstream(self, handler: Handler = zone, host: str = "127.0.0.1", port: int = 0) -> Any:
        fake = ThreadedUpstream(handler, host, port)
        address = fake.start()
        self.addCleanup(fake.stop)
        return fake, f"{address.host}:{address.port}"

    def skydns(self, *args: str, env: dict[str, str] | None = None) -> SkyDNSProcess:
        node = SkyDNSProcess(list(args))
        self.addCleanup(node.cleanup)
        with mock.patch.dict(os.environ, env or {}):
            node.start()
        return node

    def register(self, node: SkyDNSProcess, uuid: str, host: str, **fields: Any) -> None:
        status, body = http("PUT", f"{node.url}/skydns/services/{uuid}", service(host, **fields))
        self.assertEqual(status, 201, body)

    def queries_for(self, fake: ThreadedUpstream, name: str) -> int:
        wanted = name.lower().encode()
        return sum(1 for q, _ in fake.queries if q.queries[0].name.name.lower() == wanted)


class ForwardingTests(ResolverTestCase):
    """Names outside the domain go to the upstreams and come back with RA."""

    def test_forwarded_over_the_clients_transport_with_ra(self) -> None:
        """A UDP question goes upstream over UDP, a TCP one over TCP; replies have
        RA, no AA, the upstream's records and the client's question."""
        fake, upstream = self.upstream()
        node = self.skydns("--nameserver", upstream)
        reply = ask("WWW.Example.org", "A", node.dns_port)
        self.assertEqual(rcode(reply), dns.rcode.NOERROR)
        self.assertTrue(has(reply, dns.flags.RA))
        self.assertFalse(has(reply, dns.flags.AA))
        self.assertEqual(addresses(reply), ["192.0.2.1", "192.0.2.2"])
        self.assertEqual(reply.question[0].name.to_text(), "WWW.Example.org.")
        self.assertEqual((fake.udp_count, fake.tcp_count), (1, 0))

        reply = ask("tcp.example.org", "A", node.dns_port, tcp=True)
        self.assertEqual((rcode(reply), has(reply, dns.flags.RA)), (dns.rcode.NOERROR, True))
        self.assertEqual((fake.udp_count, fake.tcp_count), (1, 1))

    def test_forwarded_questions_write_no_log_lines(self) -> None:
        """SkyDNS as a host's resolver: forwarded questions (each on a socket
        of its own) add nothing to the log, over UDP or TCP."""
        fake, upstream = self.upstream()
        node = self.skydns("--nameserver", upstream)
        before = node.log().splitlines()
        for i in range(10):
            self.assertEqual(rcode(ask(f"u{i}.example.org", "A", node.dns_port)), 0)
            self.assertEqual(rcode(ask(f"t{i}.example.org", "A", node.dns_port, tcp=True)), 0)
        self.assertEqual((fake.udp_count, fake.tcp_count), (10, 10))
        self.assertEqual(node.log().splitlines()[len(before):], [])

    def test_domain_is_never_forwarded(self) -> None:
        """A name in the domain that matches nothing is NXDOMAIN from SkyDNS
        itself (AA, its SOA), over UDP and TCP; the upstream never sees it."""
        fake, upstream = self.upstream()
        node = self.skydns("--nameserver", upstream)
        for tcp in (False, True):
            reply = ask("nothing.here.SKYDNS.local", "SRV", node.dns_port, tcp=tcp)
            self.assertEqual(rcode(reply), dns.rcode.NXDOMAIN)
            self.assertTrue(has(reply, dns.flags.AA))
            self.assertEqual([r.name.to_text().lower() for r in reply.authority], ["skydns.local."])
        self.assertEqual(fake.queries, [])

    def test_cached_answer_has_its_ttl_counted_down(self) -> None:
        """A repeated question is answered from the cache (the upstream is asked
        once) with TTLs lowered by the time spent there."""
        fake, upstream = self.upstream()
        node = self.skydns("--nameserver", upstream)
        first = ask("cache.example.org", "A", node.dns_port)
        time.sleep(2.1)
        second = ask("cache.example.org", "A", node.dns_port)
        self.assertEqual(addresses(first), addresses(second))
        self.assertEqual(first.answer[0].ttl, 300)
        self.assertLessEqual(second.answer[0].ttl, 298)
        self.assertGreater(second.answer[0].ttl, 280)
        self.assertEqual(self.queries_for(fake, "cache.example.org"), 1)

    def test_negative_answer_is_cached(self) -> None:
        """NXDOMAIN with the SOA is relayed and kept (RFC 2308): asked again,
        the upstream is not asked again."""
        fake, upstream = self.upstream()
        node = self.skydns("--nameserver", upstream)
        for _ in range(3):
            reply = ask("nx.example.org", "A", node.dns_port)
            self.assertEqual(rcode(reply), dns.rcode.NXDOMAIN)
            self.assertEqual([r.rdtype for r in reply.authority], [dns.rdatatype.SOA])
            time.sleep(0.6)
        self.assertLessEqual(reply.authority[0].ttl, 59)  # counted down from the negative TTL
        self.assertEqual(self.queries_for(fake, "nx.example.org"), 1)

    def test_failover_then_servfail_within_the_bound(self) -> None:
        """A silent first upstream costs one timeout (2 s), then the second one
        answers; the silent one is then known down and skipped, so when the
        second does not answer either the client gets SERVFAIL after one
        timeout, well before its own."""
        dead, dead_address = self.upstream(silent)
        fake, upstream = self.upstream()
        node = self.skydns("--nameserver", f"{dead_address},{upstream}")
        started = time.monotonic()
        reply = ask("failover.example.org", "A", node.dns_port)
        elapsed = time.monotonic() - started
        self.assertEqual(addresses(reply), ["192.0.2.1", "192.0.2.2"])
        self.assertGreater(elapsed, 1.5)
        self.assertLess(elapsed, 4.0)
        self.assertEqual((dead.udp_count, fake.udp_count), (1, 1))

        started = time.monotonic()
        reply = ask("silent.example.org", "A", node.dns_port, timeout=10)
        elapsed = time.monotonic() - started
        self.assertEqual(rcode(reply), dns.rcode.SERVFAIL)
        self.assertTrue(has(reply, dns.flags.RA))
        self.assertGreater(elapsed, 1.5)
        self.assertLess(elapsed, 3.5)
        self.assertEqual(dead.udp_count, 1)  # skipped while down (its probe is a second off)
        # Two lines about the silent upstream (it failed; it is down), not one per question.
        self.assertEqual(len([ln for ln in node.log().splitlines() if dead_address in ln]), 2)

    def test_no_forward_refuses_outside_and_answers_inside(self) -> None:
        """With --no-forward names outside the domain get REFUSED; the domain is
        still answered, with AA."""
        node = self.skydns("--no-forward")
        self.register(node, "web1", "10.1.2.3")
        reply = ask("www.example.org", "A", node.dns_port)
        self.assertEqual(rcode(reply), dns.rcode.REFUSED)
        reply = ask("web1.skydns.local", "A", node.dns_port)
        self.assertEqual((rcode(reply), addresses(reply)), (dns.rcode.NOERROR, ["10.1.2.3"]))
        self.assertTrue(has(reply, dns.flags.AA))

    def test_forward_allow(self) -> None:
        """A client outside --forward-allow gets REFUSED (RA clear) for outside
        names over UDP and TCP, and nothing goes upstream; names in the domain
        and PTR for registered addresses are still answered to it."""
        fake, upstream = self.upstream()
        node = self.skydns("--nameserver", upstream, "--forward-allow", "10.0.0.0/8,fd00::/8")
        self.register(node, "web1", "10.1.2.3")
        for tcp in (False, True):
            reply = ask("www.example.org", "A", node.dns_port, tcp=tcp)
            self.assertEqual(rcode(reply), dns.rcode.REFUSED)
            self.assertFalse(has(reply, dns.flags.RA))
        self.assertEqual(fake.queries, [])
        reply = ask("web1.skydns.local", "A", node.dns_port)
        self.assertEqual(addresses(reply), ["10.1.2.3"])
        reply = ask(dns.reversename.from_address("10.1.2.3").to_text(), "PTR", node.dns_port)
        self.assertEqual([r.target.to_text() for r in reply.answer[0]], ["web1.skydns.local."])

    def test_bad_forward_allow_is_a_usage_error(self) -> None:
        """twistd stops at once with a message naming --forward-allow and the value."""
        result = subprocess.run(
            [*TWISTD, "--nodaemon", "--pidfile=", "skydns", "--forward-allow", "10.0.0.1/8"],
            capture_output=True,
            timeout=30,
            cwd=tempfile.mkdtemp(prefix="skydns-e2e-"),
        )
        output = (result.stdout + result.stderr).decode()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--forward-allow", output)
        self.assertIn("10.0.0.1/8", output)


class LoopTests(ResolverTestCase):
    def test_two_servers_forwarding_to_each_other(self) -> None:
        """A and B list each other first, then a real upstream: the loop costs
        one timeout, the client gets the answer, and the upstream is asked at
        most once per server."""
        fake, upstream = self.upstream()
        a_port, b_port = free_port(), free_port()
        a = SkyDNSProcess(["--nameserver", f"127.0.0.1:{b_port},{upstream}"], dns_port=a_port)
        b = SkyDNSProcess(["--nameserver", f"127.0.0.1:{a_port},{upstream}"], dns_port=b_port)
        for node in (a, b):
            self.addCleanup(node.cleanup)
            node.start()
        started = time.monotonic()
        reply = ask("loop.example.org", "A", a_port, timeout=10)
        elapsed = time.monotonic() - started
        self.assertEqual(addresses(reply), ["192.0.2.1", "192.0.2.2"])
        self.assertLess(elapsed, 5.0)
        self.assertLessEqual(self.queries_for(fake, "loop.example.org"), 2)
        # Both still answer at once afterwards (from the cache).
        for port in (a_port, b_port):
            self.assertEqual(rcode(ask("loop.example.org", "A", port, timeout=1)), 0)

    def test_resolv_conf_naming_skydns_itself(self) -> None:
        """SkyDNS on port 53 reading a resolv.conf that names itself first
        (SKYDNS_RESOLV_CONF) drops that line and forwards to the next one."""
        skydns_ip, upstream_ip = "127.53.0.1", "127.53.0.2"
        try:
            fake, _ = self.upstream(host=upstream_ip, port=53)
        except OSError as e:
            raise SkipTest(f"cannot bind port 53 on loopback ({e})") from None
        path = os.path.join(tempfile.mkdtemp(prefix="skydns-e2e-"), "resolv.conf")
        with open(path, "w") as f:
            f.write(f"# SkyDNS is this host's resolver\nnameserver {skydns_ip}\n")
            f.write(f"nameserver {upstream_ip}\noptions edns0\n")
        node = self.skydns("--dns", f"{skydns_ip}:53", env={"SKYDNS_RESOLV_CONF": path})
        reply = ask("www.example.org", "A", 53, host=skydns_ip)
        self.assertEqual(addresses(reply), ["192.0.2.1", "192.0.2.2"])
        self.assertEqual(fake.udp_count, 1)
        self.assertIn(f"not forwarding to {skydns_ip}:53", node.log())


class EDNSAndTCPTests(ResolverTestCase):
    """Payload sizes, truncation and DNS over TCP, with a big SRV answer."""

    def setUp(self) -> None:
        self.fake, upstream = self.upstream()
        # UDP answers up to 4096 bytes (the default is 1232: unit-tested).
        self.node = self.skydns("--nameserver", upstream, "--tcp-idle-timeout", "1",
                                "--max-udp-size", "4096")  # fmt: skip
        for i in range(40):
            self.register(self.node, f"instance-{i:02d}-0123456789", f"10.0.1.{i + 1}")
        self.name = "rails.production.skydns.local."

    def test_big_answer_truncated_over_udp_whole_over_tcp(self) -> None:
        """Without EDNS a UDP answer over 512 bytes is the question alone with
        TC set; the same question over TCP gets all 40 SRV records (and glue)."""
        query = dns.message.make_query(self.name, "SRV")
        data = udp_exchange(query, self.node.dns_port)
        self.assertLessEqual(len(data), 512)
        reply = dns.message.from_wire(data)
        self.assertTrue(has(reply, dns.flags.TC))
        self.assertEqual(reply.answer, [])
        whole = ask(self.name, "SRV", self.node.dns_port, tcp=True)
        self.assertFalse(has(whole, dns.flags.TC))
        self.assertEqual(sum(len(rrset) for rrset in whole.answer), 40)
        self.assertEqual(sum(len(rrset) for rrset in whole.additional), 40)
        self.assertGreater(len(whole.to_wire()), 1232)

    def test_client_payload_size_honoured_and_opt_echoed(self) -> None:
        """With EDNS the reply carries an OPT record and fits the advertised
        size (up to ``--max-udp-size``, 4096 here): 1232 bytes is too small
        for this answer (TC), 4096 is enough."""
        small = dns.message.make_query(self.name, "SRV", use_edns=0, payload=1232)
        data = udp_exchange(small, self.node.dns_port)
        reply = dns.message.from_wire(data)
        self.assertLessEqual(len(data), 1232)
        self.assertTrue(has(reply, dns.flags.TC))
        self.assertEqual(reply.edns, 0)

        big = dns.message.make_query(self.name, "SRV", use_edns=0, payload=4096)
        data = udp_exchange(big, self.node.dns_port)
        reply = dns.message.from_wire(data)
        self.assertGreater(len(data), 1232)
        self.assertLessEqual(len(data), 4096)
        self.assertFalse(has(reply, dns.flags.TC))
        self.assertEqual(sum(len(rrset) for rrset in reply.answer), 40)
        self.assertEqual(reply.edns, 0)
        self.assertGreaterEqual(reply.payload, 512)

        forwarded = ask("www.example.org", "A", self.node.dns_port, use_edns=0, payload=1400)
        self.assertEqual(forwarded.edns, 0)
        self.assertEqual(len(addresses(forwarded)), 2)
        plain = ask("www.example.org", "A", self.node.dns_port)
        self.assertEqual(plain.edns, -1)

    def test_pipelined_queries_on_one_connection(self) -> None:
        """Several queries written at once on one TCP connection are all
        answered (in any order, matched by id), authoritative and forwarded."""
        questions = {
            101: (self.name, "SRV"),
            102: ("www.example.org", "A"),
            103: ("instance-07-0123456789.skydns.local", "A"),
            104: ("nx.example.org", "A"),
        }
        wire = b""
        for query_id, (name, rdtype) in questions.items():
            query = dns.message.make_query(name, rdtype)
            query.id = query_id
            data = query.to_wire()
            wire += struct.pack("!H", len(data)) + data
        with socket.create_connection(("127.0.0.1", self.node.dns_port), timeout=5) as sock:
            sock.sendall(wire)
            replies = {}
            for _ in questions:
                reply = dns.message.from_wire(read_tcp_message(sock))
                replies[reply.id] = reply
            self.assertEqual(sorted(replies), sorted(questions))
            self.assertEqual(sum(len(r) for r in replies[101].answer), 40)
            self.assertEqual(len(addresses(replies[102])), 2)
            self.assertEqual(addresses(replies[103]), ["10.0.1.8"])
            self.assertEqual(rcode(replies[104]), dns.rcode.NXDOMAIN)
            # The connection stays usable for another question.
            query = dns.message.make_query("www.example.org", "AAAA")
            data = query.to_wire()
            sock.sendall(struct.pack("!H", len(data)) + data)
            self.assertEqual(dns.message.from_wire(read_tcp_message(sock)).id, query.id)

    def test_idle_connection_closed(self) -> None:
        """A TCP connection idle for --tcp-idle-timeout seconds is closed by the
        server (an open one that never speaks does not hold a slot forever)."""
        with socket.create_connection(("127.0.0.1", self.node.dns_port), timeout=5) as sock:
            started = time.monotonic()
            self.assertEqual(sock.recv(1), b"")
            self.assertLess(time.monotonic() - started, 3.5)

    def test_ptr_for_registered_address(self) -> None:
        """PTR of a registered instance's IP is its <uuid>.<domain>, AA, TTL the
        remaining lease; an unregistered address is forwarded."""
        name = dns.reversename.from_address("10.0.1.8").to_text()
        reply = ask(name, "PTR", self.node.dns_port)
        self.assertTrue(has(reply, dns.flags.AA))
        (rrset,) = reply.answer
        self.assertEqual(
            [r.target.to_text() for r in rrset], ["instance-07-0123456789.skydns.local."]
        )
        self.assertLessEqual(rrset.ttl, 300)
        self.assertGreater(rrset.ttl, 250)
        self.assertEqual(self.fake.queries, [])

        other = dns.reversename.from_address("10.0.9.9").to_text()
        reply = ask(other, "PTR", self.node.dns_port)
        self.assertFalse(has(reply, dns.flags.AA))
        self.assertTrue(has(reply, dns.flags.RA))
        self.assertEqual(self.queries_for(self.fake, other.rstrip(".")), 1)


class NSDUpstreamTests(ResolverTestCase):
    """nsd, a real authoritative server, as SkyDNS's upstream."""

    def start_nsd(self) -> int:
        nsd = shutil.which("nsd") or ("/usr/sbin/nsd" if os.path.exists("/usr/sbin/nsd") else None)
        if nsd is None:
            raise SkipTest("nsd is not installed")
        directory = tempfile.mkdtemp(prefix="skydns-nsd-")
        port = free_port()
        with open(os.path.join(directory, "example.test.zone"), "w") as f:
            f.write(NSD_ZONE)
        conf = os.path.join(directory, "nsd.conf")
        with open(conf, "w") as f:
            f.write(NSD_CONF.format(port=port, dir=directory))
        process = subprocess.Popen(
            [nsd, "-d", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )

        def stop() -> None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)

        self.addCleanup(stop)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if addresses(ask("ns1.example.test", "A", port, timeout=0.2)):
                    return port
            except Exception:
                time.sleep(0.1)
        with open(os.path.join(directory, "nsd.log")) as f:
            self.fail("nsd did not start:\n" + f.read())

    def test_forward_to_nsd(self) -> None:
        """Answers, NXDOMAIN with the SOA, and a 40-record answer (TC over UDP
        without EDNS, whole over TCP) all come through SkyDNS from nsd."""
        port = self.start_nsd()
        node = self.skydns("--nameserver", f"127.0.0.1:{port}")
        reply = ask("WWW.example.test", "A", node.dns_port)
        self.assertEqual(addresses(reply), ["192.0.2.80"])
        self.assertTrue(has(reply, dns.flags.RA))
        reply = ask("www.example.test", "A", node.dns_port, tcp=True)
        self.assertEqual(addresses(reply), ["192.0.2.80"])
        reply = ask("nope.example.test", "A", node.dns_port)
        self.assertEqual(rcode(reply), dns.rcode.NXDOMAIN)
        self.assertEqual([r.rdtype for r in reply.authority], [dns.rdatatype.SOA])
        data = udp_exchange(dns.message.make_query("big.example.test", "A"), node.dns_port)
        self.assertTrue(has(dns.message.from_wire(data), dns.flags.TC))
        reply = ask("big.example.test", "A", node.dns_port, tcp=True)
        self.assertEqual(len(addresses(reply)), 40)
