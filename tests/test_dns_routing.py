"""Forwarding when upstreams fail (SPEC.md §9): forward zones, upstream
health, the failure cache and serve-stale, through the real `Forwarder`
with upstreams answered (or not) by hand."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.task import Clock
from twisted.names import dns
from twisted.trial.unittest import SynchronousTestCase

from skydns.dns.forward import Forwarder
from skydns.dns.rcache import STALE_TTL, ResponseCache
from skydns.dns.routing import PROBE_INTERVAL, UpstreamRouter, parse_forward_zone
from skydns.dns.upstreams import Upstream
from tests.dns_fakes import FakeClient, answering, query

U1, U2, Z1 = Upstream("192.0.2.1"), Upstream("192.0.2.2"), Upstream("192.0.2.9", 5353)


class ZoneTests(SynchronousTestCase):
    def test_parse(self) -> None:
        zone = parse_forward_zone("Corp.Example.=192.0.2.9:5353,192.0.2.10")
        self.assertEqual((zone.name, zone.upstreams),
                         (b"corp.example", (Upstream("192.0.2.9", 5353),
                                            Upstream("192.0.2.10"))))  # fmt: skip
        for bad in ("corp.example", "=192.0.2.1", "corp..example=192.0.2.1", "x=", "x=host"):
            self.assertRaises(ValueError, parse_forward_zone, bad)

    def test_longest_match_wins(self) -> None:
        router = UpstreamRouter([U1], [parse_forward_zone("example=192.0.2.5"),
                                       parse_forward_zone("corp.example=192.0.2.9:5353")],
                                Clock())  # fmt: skip
        self.assertEqual(router.zone_of(b"www.corp.example").upstreams, (Z1,))
        self.assertEqual(router.zone_of(b"CORP.example.").upstreams, (Z1,))
        self.assertEqual(router.zone_of(b"www.example").upstreams, (Upstream("192.0.2.5"),))
        self.assertEqual(router.zone_of(b"notcorp.example").name, b"example")
        self.assertEqual(router.zone_of(b"www.example.org").upstreams, (U1,))


class ForwardingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.client = FakeClient()
        self.cache = ResponseCache(self.clock, serve_stale=3600)

    def make(self, upstreams: list[Upstream], **kw: Any) -> Forwarder:
        return Forwarder(upstreams, self.clock, cache=self.cache, client=self.client,
                         rng=random.Random(1), **kw)  # fmt: skip

    def asked(self) -> list[Upstream]:
        return [upstream for upstream, _, _, _ in self.client.calls]

    def time_out(self, forwarder: Forwarder, name: bytes = b"www.example.org") -> Any:
        d = forwarder.resolve(query(name), tcp=False)
        self.clock.advance(2.0)  # the per-upstream timeout
        return d

    def test_a_down_upstream_is_skipped_then_probed(self) -> None:
        """After U1 timed out once, questions go to U2 straight away; one a
        second still goes to U1, and its answer brings it back."""
        forwarder = self.make([U1, U2])
        d = self.time_out(forwarder, b"a.example.org")
        self.client.answer(1, answering())
        self.assertEqual(self.successResultOf(d).rCode, dns.OK)
        self.assertEqual(self.asked(), [U1, U2])
        forwarder.resolve(query(b"b.example.org"), tcp=False)
        self.assertEqual(self.asked()[-1], U2)           # U1 not waited on
        self.clock.advance(PROBE_INTERVAL)
        forwarder.resolve(query(b"c.example.org"), tcp=False)
        self.assertEqual(self.asked()[-2:], [U1, U2])     # a probe beside the healthy one
        self.client.answer(3, answering())                # the probe answers
        forwarder.resolve(query(b"d.example.org"), tcp=False)
        self.assertEqual(self.asked()[-1], U1)

    def test_all_down_fails_at_once(self) -> None:
        """With every upstream down and no probe due, a question fails in
        microseconds: SERVFAIL, nothing sent."""
        forwarder = self.make([U1])
        self.time_out(forwarder)
        sent = len(self.client.calls)
        d = forwarder.resolve(query(b"other.example.org"), tcp=False)
        self.assertEqual(self.successResultOf(d).rCode, dns.ESERVER)
        self.assertEqual(len(self.client.calls), sent)

    def test_stale_answers_when_upstreams_fail(self) -> None:
        """An answer past its TTL is served with TTL 30 when the refresh
        fails, until --serve-stale runs out; then SERVFAIL."""
        forwarder = self.make([U1])
        d = forwarder.resolve(query(), tcp=False)
        self.client.answer(0, answering(ttl=10))
        self.assertEqual(self.successResultOf(d).answers[0].ttl, 10)
        self.clock.advance(11)
        stale = self.successResultOf(self.time_out(forwarder))
        self.assertEqual((stale.rCode, [r.ttl for r in stale.answers]), (dns.OK, [STALE_TTL]))
        # While the upstream is down and the failure remembered: stale at once.
        again = self.successResultOf(forwarder.resolve(query(), tcp=False))
        self.assertEqual([r.ttl for r in again.answers], [STALE_TTL])
        self.clock.advance(3600)
        gone = self.successResultOf(self.time_out(forwarder))  # the probe, unanswered
        self.assertEqual(gone.rCode, dns.ESERVER)

    def test_no_stale_when_turned_off(self) -> None:
        self.cache = ResponseCache(self.clock, serve_stale=0)
        forwarder = self.make([U1])
        d = forwarder.resolve(query(), tcp=False)
        self.client.answer(0, answering(ttl=10))
        self.successResultOf(d)
        self.clock.advance(11)
        self.assertEqual(self.successResultOf(self.time_out(forwarder)).rCode, dns.ESERVER)

    def test_failure_cache_backs_off_to_five_seconds(self) -> None:
        """A question that keeps failing is remembered 1, 2, 4, then 5 s."""
        cache = ResponseCache(self.clock)
        from skydns.dns.rcache import CacheKey

        key = CacheKey(b"x.example", dns.A, dns.IN)
        lengths = []
        for _ in range(5):
            cache.fail(key)
            start = self.clock.seconds()
            while cache.failing(key):
                self.clock.advance(0.25)
            lengths.append(self.clock.seconds() - start)
        self.assertEqual(lengths, [1.0, 2.0, 4.0, 5.0, 5.0])

    def test_forward_zone_goes_to_its_servers(self) -> None:
        forwarder = self.make([U1], zones=[parse_forward_zone("corp.test=192.0.2.9:5353")])
        forwarder.resolve(query(b"db.corp.test"), tcp=False)
        forwarder.resolve(query(b"www.example.org"), tcp=False)
        self.assertEqual(self.asked(), [Z1, U1])
        self.assertEqual(dict(forwarder.by_upstream),
                         {(str(Z1), "corp.test"): 1, (str(U1), "."): 1})  # fmt: skip


class TLSSettingsTests(SynchronousTestCase):
    def test_tls_upstreams_parse(self) -> None:
        from skydns.dns.upstreams import parse_upstream

        self.assertEqual(parse_upstream("tls://192.0.2.1#dns.example"),
                         Upstream("192.0.2.1", 853, "dns.example"))  # fmt: skip
        self.assertEqual(str(parse_upstream("tls://[2001:db8::1]:8853#DNS.example")),
                         "tls://[2001:db8::1]:8853#dns.example")  # fmt: skip
        for bad in ("tls://192.0.2.1", "tls://192.0.2.1#", "tls://host.example#x"):
            self.assertRaises(ValueError, parse_upstream, bad)

    def test_dns_tls_options_go_together_and_files_are_checked(self) -> None:
        import os
        import tempfile

        from twisted.python import usage

        from skydns.options import Options
        from tests.e2e.certs import issue

        directory = tempfile.mkdtemp(prefix="skydns-tlsopt-")
        leaf = issue(directory, "dot.test", ca=issue(directory, "ca", ip=None))
        base = ["--nameserver", "127.0.0.1:5353"]
        options = Options()
        options.parseOptions([*base, "--dns-tls", "127.0.0.1", "--dns-tls-cert", leaf.cert_path,
                              "--dns-tls-key", leaf.key_path])  # fmt: skip
        self.assertEqual(options["dns-tls"].port, 853)
        self.assertIsNotNone(options["dns-tls-context"])
        error = self.assertRaises(usage.UsageError, Options().parseOptions,
                                  [*base, "--dns-tls", "127.0.0.1:853"])  # fmt: skip
        self.assertIn("go together", str(error))
        missing = os.path.join(directory, "missing.pem")
        error = self.assertRaises(usage.UsageError, Options().parseOptions,
                                  [*base, "--dns-tls", "127.0.0.1:853", "--dns-tls-cert", missing,
                                   "--dns-tls-key", leaf.key_path])  # fmt: skip
        self.assertIn("cannot read", str(error))
        error = self.assertRaises(usage.UsageError, Options().parseOptions,
                                  [*base, "--forward-tls-ca", leaf.key_path])  # fmt: skip
        self.assertIn("no PEM certificate", str(error))


class AttemptsTests(SynchronousTestCase):
    def test_attempts_are_rounds_through_the_upstreams(self) -> None:
        """--forward-attempts 2: an upstream answering SERVFAIL is asked
        again in the second round before the question fails."""
        from tests.dns_fakes import failing

        clock = Clock()
        client = FakeClient()
        forwarder = Forwarder([U1], clock, cache=ResponseCache(clock), client=client,
                              rng=random.Random(1), attempts=2)  # fmt: skip
        d = forwarder.resolve(query(), tcp=False)
        client.answer(0, failing(dns.ESERVER))
        client.answer(1, failing(dns.ESERVER))
        self.assertEqual(self.successResultOf(d).rCode, dns.ESERVER)
        self.assertEqual(len(client.calls), 2)
