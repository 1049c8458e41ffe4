"""Hostile packets against a real `twistd skydns` process (issue 4 item 5).

Two generators:

- a structured one (hypothesis), whose packets each have the reply the RFCs
  call for, checked one by one: several questions or none → FORMERR, an
  opcode other than QUERY → NOTIMP, a response or a packet shorter than a
  header → no reply, compression pointer loops → FORMERR or no reply, two OPT
  records → FORMERR (RFC 1035 §4.1.1, RFC 6891 §6.1.1, RFC 9619);
- a seeded mutation generator for the bulk (over 100,000 packets over UDP
  and a sample over TCP): random bytes, bit flips, truncations, lying
  counts, pointer games, opcode and flag changes and mangled OPT records
  applied to valid queries.  The seed is printed; set SKYDNS_FUZZ_SEED to
  replay it.

Packets go out in bursts from a non-blocking socket without waiting for
replies; after each burst a valid query must be answered (none may fail),
every reply seen must be a well-formed response, and the process must be
alive.  Afterwards it must still answer correctly over UDP and TCP.
"""

from __future__ import annotations

import os
import random
import select
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

import dns.message
import dns.rcode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.dns_fakes import ThreadedUpstream, nxdomain
from tests.e2e.harness import SkyDNSProcess, http

#: Packets in the UDP barrage, and in the TCP sample.
UDP_PACKETS = 100_000
TCP_PACKETS = 3_000
#: Packets sent before each probe: small enough for the server's socket buffer.
BURST = 100
#: Seconds a probe (a valid query) may take to be answered during the barrage.
PROBE_TIMEOUT = 3.0

DOMAIN = "skydns.local"
PROBE_NAME = f"rails.production.{DOMAIN}"

QR = 0x8000
RD = 0x0100


def encode_name(name: str) -> bytes:
    labels = [label.encode() for label in name.strip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def header(qid: int, flags: int = RD, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def question(name: str, qtype: int = 1, qclass: int = 1) -> bytes:
    return encode_name(name) + struct.pack("!HH", qtype, qclass)


def opt(payload: int = 1232, version: int = 0, flags: int = 0, rdata: bytes = b"") -> bytes:
    return b"\0" + struct.pack("!HHBBHH", 41, payload, 0, version, flags, len(rdata)) + rdata


def query(qid: int, name: str, qtype: int = 1, edns: bool = False, flags: int = RD) -> bytes:
    extra = opt() if edns else b""
    return header(qid, flags, ar=1 if edns else 0) + question(name, qtype) + extra


#: Valid queries the mutations start from: in the domain (most), a PTR, and
#: names that are forwarded to the fake upstream.
CORPUS = [
    (PROBE_NAME, 33, False),
    (PROBE_NAME, 33, True),
    (f"east.rails.production.{DOMAIN}", 1, False),
    (f"*.rails.production.{DOMAIN}", 28, True),
    (f"web0.{DOMAIN}", 1, False),
    (f"nothing.here.{DOMAIN}", 33, False),
    (DOMAIN, 6, True),
    (DOMAIN, 2, False),
    ("1.0.0.10.in-addr.arpa", 12, False),
    ("www.example.org", 1, False),
    ("www.example.org", 255, True),
]


def mutations(rng: random.Random) -> Callable[[], bytes]:
    """A generator of hostile packets drawn from ``rng`` (see the module)."""

    def valid() -> bytearray:
        name, qtype, edns = rng.choice(CORPUS)
        return bytearray(query(rng.getrandbits(16), name, qtype, edns))

    def random_bytes() -> bytes:
        return rng.randbytes(rng.choice([rng.randrange(0, 13), rng.randrange(0, 600)]))

    def bit_flips() -> bytes:
        packet = valid()
        for _ in range(rng.randrange(1, 9)):
            packet[rng.randrange(len(packet))] ^= 1 << rng.randrange(8)
        return bytes(packet)

    def truncated() -> bytes:
        packet = valid()
        return bytes(packet[: rng.randrange(len(packet))])

    def lying_counts() -> bytes:
        packet = valid()
        index = rng.choice([4, 6, 8, 10])
        packet[index : index + 2] = struct.pack("!H", rng.choice([0, 2, 3, 255, 65535]))
        return bytes(packet)

    def pointers() -> bytes:
        # A compression pointer anywhere in the question name: to itself, back
        # into the header, forward past the end, or chains of pointers.
        packet = valid()
        where = rng.randrange(12, max(13, len(packet) - 4))
        target = rng.choice([where, rng.randrange(0, 12), len(packet) + 5, rng.randrange(16384)])
        pointer = struct.pack("!H", 0xC000 | target)
        if rng.random() < 0.3:
            pointer += struct.pack("!H", 0xC000 | where)
        return bytes(packet[:where]) + pointer + bytes(packet[where:])

    def flags() -> bytes:
        packet = valid()
        value = struct.unpack("!H", packet[2:4])[0]
        value ^= rng.choice([QR, rng.randrange(1, 16) << 11, 0x0400, 0x0200, 0x0070, 0x000F])
        packet[2:4] = struct.pack("!H", value)
        return bytes(packet)

    def several_questions() -> bytes:
        count = rng.randrange(2, 5)
        name, qtype, _ = rng.choice(CORPUS)
        return header(rng.getrandbits(16), qd=count) + question(name, qtype) * count

    def bad_opt() -> bytes:
        name, qtype, _ = rng.choice(CORPUS)
        choices = [
            opt() + opt(),
            opt(version=rng.randrange(1, 256)),
            opt(payload=rng.choice([0, 1, 511, 65535])),
            opt(rdata=rng.randbytes(rng.randrange(1, 40))),
            b"\x01a\x00" + opt()[1:],
            opt()[:-2] + struct.pack("!H", rng.randrange(1, 65535)),
            opt()[: rng.randrange(1, 11)],
        ]
        extra = rng.choice(choices)
        count = 2 if extra.startswith(opt() + b"\0") else 1
        return header(rng.getrandbits(16), ar=count) + question(name, qtype) + extra

    kinds = [
        random_bytes,
        bit_flips,
        bit_flips,
        truncated,
        lying_counts,
        pointers,
        flags,
        several_questions,
        bad_opt,
    ]
    return lambda: rng.choice(kinds)()


def looks_like_a_response(data: bytes) -> bool:
    """A reply is at least a header with QR set."""
    return len(data) >= 12 and bool(data[2] & 0x80)


class Server:
    """The process under attack, with a fake upstream answering NXDOMAIN and a
    few registered instances for the probes to find."""

    def __init__(self) -> None:
        self.upstream = ThreadedUpstream(nxdomain())
        address = self.upstream.start()
        # The probes, hundreds a second from one address, would spend the
        # large-answer budget and be answered with TC (tested elsewhere).
        self.node = SkyDNSProcess(
            ["--nameserver", f"{address.host}:{address.port}", "--rrl-large-rate", "0"]
        )
        self.node.start()
        for i in range(3):
            body = {
                "Name": "rails", "Environment": "production", "Region": "east",
                "Version": "1.0.1", "Host": f"10.0.0.{i + 1}", "Port": 8080, "TTL": 3600,
            }  # fmt: skip
            status, _ = http("PUT", f"{self.node.url}/skydns/services/web{i}", body)
            assert status == 201, status
        self.address = ("127.0.0.1", self.node.dns_port)

    def alive(self) -> bool:
        process = self.node.process
        return process is not None and process.poll() is None

    def stop(self) -> None:
        try:
            self.node.stop()
        finally:
            self.node.cleanup()
            self.upstream.stop()


class UDPClient:
    """A non-blocking UDP socket that sends bursts and drains replies."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.setblocking(False)
        self.replies = 0
        self.bad_replies = 0

    def send(self, packet: bytes) -> None:
        while True:
            try:
                self.sock.sendto(packet, self.address)
                return
            except BlockingIOError:
                select.select([], [self.sock], [], 1.0)

    def drain(self) -> list[bytes]:
        received: list[bytes] = []
        while True:
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return received
            self.replies += 1
            if not looks_like_a_response(data):
                self.bad_replies += 1
            received.append(data)

    def until(self, qid: int, timeout: float) -> tuple[bytes | None, list[bytes]]:
        """Replies until the right answer to the probe with id ``qid`` (returned
        first; a hostile packet may have had the same id), or None after
        ``timeout``; and the replies before it."""
        deadline = time.monotonic() + timeout
        seen: list[bytes] = []
        while True:
            for data in self.drain():
                if probe_answer_ok(data, qid):
                    return data, seen
                seen.append(data)
            left = deadline - time.monotonic()
            if left <= 0:
                return None, seen
            select.select([self.sock], [], [], left)

    def probe(self, qid: int, timeout: float = PROBE_TIMEOUT) -> bool:
        """Whether a valid query with id ``qid`` gets its right answer in time."""
        self.send(query(qid, PROBE_NAME, 33))
        data, _ = self.until(qid, timeout)
        return data is not None

    def close(self) -> None:
        self.sock.close()


def probe_answer_ok(data: bytes, qid: int) -> bool:
    if len(data) < 2 or struct.unpack("!H", data[:2])[0] != qid:
        return False
    try:
        reply = dns.message.from_wire(data)
    except Exception:
        return False
    return (
        reply.id == qid
        and reply.rcode() == dns.rcode.NOERROR
        and sum(len(rrset) for rrset in reply.answer) == 3
    )


# Structured packets with the reply the RFCs call for.

FORMERR, NOTIMP, NONE, FORMERR_OR_NONE = "FORMERR", "NOTIMP", "no reply", "FORMERR or no reply"

names = st.sampled_from([c[0] for c in CORPUS])
ids = st.integers(0, 0xFFFF)


@st.composite
def hostile(draw: Any) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["several", "none", "opcode", "response", "short", "loop", "opts"]))
    qid = draw(ids)
    name = draw(names)
    qtype = draw(st.sampled_from([1, 28, 33, 12, 255]))
    if kind == "several":
        count = draw(st.integers(2, 6))
        return header(qid, qd=count) + question(name, qtype) * count, FORMERR
    if kind == "none":
        return header(qid, qd=0), FORMERR
    if kind == "opcode":
        opcode = draw(st.integers(1, 15))
        return header(qid, RD | opcode << 11) + question(name, qtype), NOTIMP
    if kind == "response":
        body = header(qid, QR | RD, an=draw(st.integers(0, 2))) + question(name, qtype)
        return body + draw(st.binary(max_size=40)), NONE
    if kind == "short":
        return draw(st.binary(max_size=11)), NONE
    if kind == "loop":
        # The name is a pointer to itself, or two pointers to each other.
        if draw(st.booleans()):
            name_bytes = struct.pack("!H", 0xC000 | 12)
        else:
            name_bytes = struct.pack("!H", 0xC000 | 14) + struct.pack("!H", 0xC000 | 12)
        return header(qid) + name_bytes + struct.pack("!HH", qtype, 1), FORMERR_OR_NONE
    extra = opt(draw(st.integers(512, 4096))) + opt()
    return header(qid, ar=2) + question(name, qtype) + extra, FORMERR


class HostilePacketTests(SynchronousTestCase):
    """One server process for the whole class (the barrage is what is tested)."""

    server: Server

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = Server()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()

    def setUp(self) -> None:
        self.client = UDPClient(self.server.address)
        self.addCleanup(self.client.close)

    def assert_alive_and_answering(self) -> None:
        """The process lives, answers a valid query over UDP and TCP, and has
        logged no traceback (a hostile packet that raised somewhere unexpected,
        which leaves its sender without the reply it should get)."""
        self.assertTrue(self.server.alive(), self.server.node.log()[-4000:])
        self.assertTrue(self.client.probe(0x7E57, timeout=5.0), "a valid query went unanswered")
        with socket.create_connection(self.server.address, timeout=10) as sock:
            probe = query(0x7E58, PROBE_NAME, 33)
            sock.sendall(struct.pack("!H", len(probe)) + probe)
            self.assertTrue(self.read_until(sock, 0x7E58))
        log = self.server.node.log()
        index = log.find("Traceback")
        self.assertEqual(index, -1, log[max(0, index - 300) : index + 3000])

    @settings(
        max_examples=400,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(hostile())
    def test_structured_packets_get_the_rfc_reply(self, case: tuple[bytes, str]) -> None:
        """Each malformed query gets FORMERR / NOTIMP with its id and QR set, or
        no reply at all, as the RFCs say; the valid query after it is answered."""
        packet, expected = case
        qid = struct.unpack("!H", packet[:2])[0] if len(packet) >= 2 else -1
        probe_id = (qid + 1) & 0xFFFF if qid >= 0 else 0x5EED
        self.client.send(packet)
        self.client.send(query(probe_id, PROBE_NAME, 33))
        probe, before = self.client.until(probe_id, PROBE_TIMEOUT)
        self.assertIsNotNone(probe, "the valid query after it was not answered")
        replies = [d for d in before if len(d) >= 2 and struct.unpack("!H", d[:2])[0] == qid]
        if expected == NONE:
            self.assertEqual(replies, [])
            return
        if expected == FORMERR_OR_NONE and not replies:
            return
        self.assertEqual(len(replies), 1, f"{expected} expected, got {len(replies)} replies")
        (data,) = replies
        self.assertTrue(looks_like_a_response(data))
        rcode = data[3] & 0x0F
        wanted = {FORMERR: 1, FORMERR_OR_NONE: 1, NOTIMP: 4}[expected]
        self.assertEqual(rcode, wanted, f"{expected} expected, got rcode {rcode}")

    def test_udp_barrage(self) -> None:
        """100,000 mutated packets in bursts: every burst is followed by a valid
        query that must be answered; every reply is a well-formed response; the
        process lives and answers correctly afterwards."""
        seed = int(os.environ.get("SKYDNS_FUZZ_SEED") or random.SystemRandom().getrandbits(32))
        print(f"\nDNS fuzz seed: {seed} (SKYDNS_FUZZ_SEED={seed} to replay)", file=sys.stderr)
        generate = mutations(random.Random(seed))
        failures = 0
        started = time.monotonic()
        for burst in range(UDP_PACKETS // BURST):
            for _ in range(BURST):
                self.client.send(generate())
            self.client.drain()
            if not self.client.probe(0x8000 | burst & 0x7FFF):
                failures += 1
                self.assertTrue(self.server.alive(), self.server.node.log()[-4000:])
        elapsed = time.monotonic() - started
        print(
            f"{UDP_PACKETS} packets in {elapsed:.1f}s, {self.client.replies} replies",
            file=sys.stderr,
        )
        self.assertEqual(failures, 0, f"{failures} valid queries unanswered (seed {seed})")
        self.assertEqual(self.client.bad_replies, 0, f"malformed replies (seed {seed})")
        self.assert_alive_and_answering()

    def test_tcp_sample(self) -> None:
        """Mutated messages over TCP (length prefixes intact) on a few
        connections, each followed by a valid query on the same connection;
        then a lying length prefix and a connection closed mid-message."""
        seed = int(os.environ.get("SKYDNS_FUZZ_SEED") or random.SystemRandom().getrandbits(32))
        print(f"\nDNS fuzz seed (TCP): {seed}", file=sys.stderr)
        generate = mutations(random.Random(seed))
        per_connection = 500
        for connection in range(TCP_PACKETS // per_connection):
            with socket.create_connection(self.server.address, timeout=10) as sock:
                frames = []
                for _ in range(per_connection):
                    packet = generate()[:65535]
                    frames.append(struct.pack("!H", len(packet)) + packet)
                probe_id = 0x4000 | connection
                probe = query(probe_id, PROBE_NAME, 33)
                sock.sendall(b"".join(frames) + struct.pack("!H", len(probe)) + probe)
                self.assertTrue(self.read_until(sock, probe_id), f"seed {seed}")
        with socket.create_connection(self.server.address, timeout=10) as sock:
            sock.sendall(b"\xff\xff" + os.urandom(100))
        with socket.create_connection(self.server.address, timeout=10) as sock:
            sock.sendall(b"\x00")
        self.assert_alive_and_answering()

    def read_until(self, sock: socket.socket, qid: int) -> bool:
        """Read replies from ``sock`` until the one with id ``qid``; check each."""
        buffer = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            while len(buffer) >= 2 and len(buffer) >= 2 + struct.unpack("!H", buffer[:2])[0]:
                size = struct.unpack("!H", buffer[:2])[0]
                data, buffer = buffer[2 : 2 + size], buffer[2 + size :]
                self.assertTrue(looks_like_a_response(data))
                if probe_answer_ok(data, qid):
                    return True
            chunk = sock.recv(65535)
            if not chunk:
                return False
            buffer += chunk
        return False
