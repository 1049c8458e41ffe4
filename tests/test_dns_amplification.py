"""Tests for the large-answer budget (`skydns.dns.amplification`): its
parts, its use on every UDP path of the server, the option and the metric,
and the amplification a flood of forged queries draws with the defaults."""

from __future__ import annotations

from typing import Any

import dns.flags
import dns.message
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from skydns.commands import Register
from skydns.dns.amplification import (
    DEFAULT_RATE,
    FACTOR,
    AmplificationLimiter,
    question_end,
    truncated_answer,
)
from skydns.dns.authority import SkyDNSAuthority, make_resolver
from skydns.dns.protocols import FastUDPPort
from skydns.dns.rrl import DROP
from skydns.dns.server import SkyDNSServerFactory
from skydns.metrics import Metrics
from skydns.names import Service
from skydns.registry import Registry
from skydns.tap import Options
from tests.test_dns_rrl import FakeSocket
from tests.test_dns_server import FakeUDPTransport

DOMAIN = "skydns.local"
NAME = "rails.production.skydns.local"
#: A forged source: nothing is ever sent to it (the transports are fakes).
VICTIM = ("198.51.100.7", 5353)


def query(name: str = NAME, rdtype: str = "SRV", ident: int = 7, **kw: Any) -> bytes:
    message = dns.message.make_query(name, rdtype, **kw)
    message.id = ident
    return message.to_wire()


def big_server(clock: Clock, large: AmplificationLimiter | None, instances: int = 19) -> Any:
    """A server whose SRV set for NAME has ``instances`` instances: 19 make
    the largest answer that fits in 1232 bytes (1,216 for a 58-byte EDNS
    query, 21x), the worst a forged query can draw."""
    registry = Registry()
    for n in range(instances):
        service = Service(
            uuid=f"uuid{n}", name="rails", environment="production", region="east",
            version="1.0.0", host=f"10.0.{n // 250}.{n % 250 + 1}", port=8000 + n, ttl=600,
        )  # fmt: skip
        registry.apply(Register(service, clock.seconds() - 0.5))
    authority = SkyDNSAuthority(registry, clock, DOMAIN, [("node1", "127.0.0.1")])
    return SkyDNSServerFactory(make_resolver(authority), clock, large_limiter=large)


class PartsTests(SynchronousTestCase):
    def test_question_end(self) -> None:
        data = query()
        self.assertEqual(question_end(data), 12 + len(NAME) + 2 + 4)
        self.assertEqual(question_end(data[:20]), 0)  # cut short
        self.assertEqual(question_end(b"\x00" * 12), 0)  # no question

    def test_truncated_answer_keeps_header_and_question(self) -> None:
        reply = dns.message.make_response(dns.message.from_wire(query(ident=99)))
        srv = dns.rrset.from_text(NAME + ".", 30, "IN", "SRV", "10 100 80 a.example.")
        reply.answer.append(srv)
        short = truncated_answer(reply.to_wire())
        assert short is not None
        parsed = dns.message.from_wire(short)
        self.assertEqual(parsed.id, 99)
        self.assertTrue(parsed.flags & dns.flags.TC and parsed.flags & dns.flags.QR)
        self.assertEqual(parsed.question, reply.question)
        self.assertEqual((parsed.answer, parsed.authority, parsed.additional), ([], [], []))
        self.assertLessEqual(len(short), len(query()))

    @given(st.binary(max_size=80))
    def test_truncated_answer_of_anything(self, data: bytes) -> None:
        """Any bytes give a short reply or None, never an exception."""
        short = truncated_answer(data)
        if short is not None:
            self.assertLessEqual(len(short), len(data))


class LimiterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.large = AmplificationLimiter(self.clock, rate=3)
        self.big = dns.message.make_response(dns.message.from_wire(query()))
        for n in range(10):
            self.big.answer.append(
                dns.rrset.from_text(NAME + ".", 30, "IN", "SRV", f"10 100 {n} a{n}.example.")
            )
        self.wire = self.big.to_wire()

    def test_small_answers_are_never_limited(self) -> None:
        small = self.wire[: FACTOR * 40]
        for _ in range(1000):
            self.assertIs(self.large.check(small, 40, "192.0.2.1"), small)
        self.assertEqual(self.large.truncated, 0)

    def test_large_answers_spend_the_budget_then_go_truncated(self) -> None:
        sent = [self.large.check(self.wire, len(query()), "192.0.2.1") for _ in range(5)]
        self.assertEqual(sent[:3], [self.wire] * 3)
        for short in sent[3:]:
            self.assertEqual(short, truncated_answer(self.wire))
        self.assertEqual(self.large.truncated, 2)
        # Another network has its own budget; the first one's refills.
        self.assertIs(self.large.check(self.wire, 50, "192.0.3.1"), self.wire)
        self.clock.advance(1 / 3)
        self.assertIs(self.large.check(self.wire, 50, "192.0.2.1"), self.wire)

    def test_unknown_query_size_is_taken_from_the_question(self) -> None:
        """Size 0 (a path that no longer has the query) counts the reply's
        header and question, which every query holds at least."""
        header_and_question = question_end(self.wire)
        fits = self.wire[: FACTOR * header_and_question]
        self.assertIs(self.large.check(fits, 0, "192.0.2.1"), fits)
        for _ in range(3):
            self.large.check(self.wire, 0, "192.0.2.1")
        self.assertEqual(self.large.check(self.wire, 0, "192.0.2.1"), truncated_answer(self.wire))

    def test_no_question_no_answer(self) -> None:
        junk = b"\x00" * 200
        for _ in range(3):
            self.large.check(junk, 20, "192.0.2.1")
        self.assertEqual(self.large.check(junk, 20, "192.0.2.1"), DROP)


class FloodTests(SynchronousTestCase):
    """The check of spec §11: a flood of forged worst queries gets back at
    most three times its own size, with the defaults, on every UDP path."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.large = AmplificationLimiter(self.clock)  # the defaults

    def flood(self, send: Any, seconds: int = 2, rate: int = 5000) -> tuple[int, int]:
        """``rate`` queries a second for ``seconds``: (bytes in, bytes out)."""
        data = query(use_edns=0, payload=4096)
        sent_in = 0
        for _ in range(seconds * rate // 100):
            for _ in range(100):
                send(data)
                sent_in += len(data)
            self.clock.advance(100 / rate)
        return sent_in, 0

    def test_worst_query_amplifies_at_most_3x(self) -> None:
        factory = big_server(self.clock, self.large)
        protocol = factory.datagram_protocol()
        transport = FakeUDPTransport()
        protocol.makeConnection(transport)  # type: ignore[arg-type]
        sent_in, _ = self.flood(lambda data: protocol.datagramReceived(data, VICTIM))
        out = sum(len(data) for data, _ in transport.sent)
        first = transport.sent[0][0]
        # Unlimited, the worst answer is the largest a UDP answer may be.
        self.assertGreater(len(first), 1100)
        self.assertLessEqual(len(first), 1232)
        self.assertGreater(len(first), 20 * len(query(use_edns=0, payload=4096)))
        self.assertLessEqual(out / sent_in, 3.0, (out, sent_in))
        # Every query got a reply: the real ones can ask again over TCP.
        self.assertEqual(len(transport.sent), sent_in // len(query(use_edns=0, payload=4096)))

    def test_fast_read_loop_too(self) -> None:
        factory = big_server(self.clock, self.large)
        protocol = factory.datagram_protocol()
        port = FastUDPPort(0, protocol, "127.0.0.1", 512, self.clock)
        sock = FakeSocket([])
        port.socket = sock  # type: ignore[assignment]
        protocol.makeConnection(port)

        def send(data: bytes) -> None:
            sock.incoming.append((data, VICTIM))
            port.doRead()

        sent_in, _ = self.flood(send)
        out = sum(len(data) for data, _ in sock.sent)
        self.assertLessEqual(out / sent_in, 3.0, (out, sent_in))
        assert factory.answer_cache is not None
        self.assertGreater(sum(factory.answer_cache.udp_hits.values()), 9000)

    def test_without_the_budget_it_amplifies(self) -> None:
        """The same flood with ``--rrl-large-rate 0``: the ratio the budget
        prevents (the test above would pass vacuously without it)."""
        factory = big_server(self.clock, None)
        protocol = factory.datagram_protocol()
        transport = FakeUDPTransport()
        protocol.makeConnection(transport)  # type: ignore[arg-type]
        sent_in, _ = self.flood(lambda data: protocol.datagramReceived(data, VICTIM), seconds=1)
        out = sum(len(data) for data, _ in transport.sent)
        self.assertGreater(out / sent_in, 20)

    def test_real_clients_below_the_rate_get_whole_answers(self) -> None:
        factory = big_server(self.clock, self.large)
        protocol = factory.datagram_protocol()
        transport = FakeUDPTransport()
        protocol.makeConnection(transport)  # type: ignore[arg-type]
        for n in range(3 * DEFAULT_RATE):
            protocol.datagramReceived(query(ident=n, use_edns=0, payload=4096), VICTIM)
            self.clock.advance(1.5 / DEFAULT_RATE)
        for data, _ in transport.sent:
            self.assertFalse(dns.message.from_wire(data).flags & dns.flags.TC)

    def test_tcp_is_never_budgeted(self) -> None:
        from twisted.internet.testing import StringTransport

        factory = big_server(self.clock, AmplificationLimiter(self.clock, rate=1))
        protocol = factory.buildProtocol(("127.0.0.1", 1))
        transport = StringTransport()
        protocol.makeConnection(transport)
        data = query(use_edns=0, payload=4096)
        for _ in range(5):
            protocol.dataReceived(len(data).to_bytes(2, "big") + data)
        stream = transport.value()
        for _ in range(5):
            size = int.from_bytes(stream[:2], "big")
            reply = dns.message.from_wire(stream[2 : 2 + size])
            self.assertEqual(len(reply.answer[0]), 19)
            stream = stream[2 + size :]


class OptionAndMetricTests(SynchronousTestCase):
    def test_on_by_default(self) -> None:
        options = Options()
        options.parseOptions([])
        self.assertEqual(options["rrl-large-rate"], DEFAULT_RATE)
        options = Options()
        options.parseOptions(["--rrl-large-rate", "0"])
        self.assertEqual(options["rrl-large-rate"], 0)
        with self.assertRaises(usage.UsageError) as caught:
            Options().parseOptions(["--rrl-large-rate", "-1"])
        self.assertIn("--rrl-large-rate", str(caught.exception))

    def test_metric(self) -> None:
        clock = Clock()
        large = AmplificationLimiter(clock, rate=1)
        factory = big_server(clock, large)
        metrics = Metrics()
        factory.stats.bind(metrics)
        protocol = factory.datagram_protocol()
        protocol.makeConnection(FakeUDPTransport())  # type: ignore[arg-type]
        for n in range(4):
            protocol.datagramReceived(query(ident=n, use_edns=0, payload=4096), VICTIM)
        value = metrics.registry.get_sample_value(
            "skydns_dns_rrl_responses_total", {"action": "truncated"}
        )
        self.assertEqual(value, 3.0)
