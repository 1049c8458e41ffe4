"""``--store etcd`` around its copy: the options, readiness and the
staleness bound for DNS, and what a client is told when etcd cannot take a
write.  Against a real etcd: tests/e2e/test_etcd_store.py."""

from __future__ import annotations

import json
import tempfile
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from skydns.cluster import StoreUnavailable
from skydns.commands import Command, Register
from skydns.dns.authority import SkyDNSAuthority
from skydns.dns.resolution import RegistryUnavailable
from skydns.http.api import make_api
from skydns.names import Service
from skydns.options import Options
from skydns.registry import Registry
from skydns.store.etcd.client import KeyValue
from skydns.store.etcd.cluster import PROBE_INTERVAL, EtcdCluster
from skydns.store.etcd.layout import Layout
from skydns.testing import LocalCluster


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(["--no-forward", *args])
    return options


class OptionTests(SynchronousTestCase):
    def test_raft_by_default(self) -> None:
        self.assertIsNone(parse()["etcd"])

    def test_endpoints(self) -> None:
        settings = parse("--store", "etcd://127.0.0.1:2379,[::1]:2380,etcd.example")["etcd"]
        self.assertEqual(settings.endpoints, ("http://127.0.0.1:2379", "http://[::1]:2380",
                                              "http://etcd.example:2379"))  # fmt: skip
        self.assertEqual(settings.prefix, b"/skydns/")
        self.assertEqual(settings.max_staleness, 60.0)
        https = parse("--store", "https://10.0.0.1:2379", "--etcd-prefix", "/dns",
                      "--etcd-max-staleness", "5")["etcd"]  # fmt: skip
        self.assertEqual((https.endpoints, https.prefix, https.max_staleness),
                         (("https://10.0.0.1:2379",), b"/dns/", 5.0))  # fmt: skip

    def test_mistakes_are_one_line_each(self) -> None:
        with tempfile.NamedTemporaryFile() as pem:
            cases = {
                ("--store", "consul://x:1"): "--store",
                ("--store", "etcd://"): "--store",
                ("--store", "etcd://h:99999"): "--store",
                ("--store", "etcd://h:1", "--etcd-prefix", "skydns"): "--etcd-prefix",
                ("--store", "etcd://h:1", "--etcd-max-staleness", "0"): "--etcd-max-staleness",
                ("--store", "etcd://h:1", "--etcd-cert", pem.name, "--etcd-key", pem.name):
                    "https",
                ("--store", "https://h:1", "--etcd-cert", pem.name): "go together",
                ("--store", "https://h:1", "--etcd-ca", "/nonexistent/ca.pem"): "--etcd-ca",
                ("--etcd-ca", pem.name): "--store",
                ("--store", "etcd://h:1", "--dns-workers", "2"): "--dns-workers",
            }  # fmt: skip
            for args, said in cases.items():
                with self.assertRaises(usage.UsageError, msg=args) as caught:
                    parse(*args)
                self.assertIn(said, str(caught.exception), args)


class FakeEtcd:
    endpoints = ["http://127.0.0.1:2379"]

    def __init__(self) -> None:
        self.up = True
        self.written = 0

    async def range(self, key: bytes, range_end: bytes = b"", revision: int = 0) -> Any:
        if not self.up:
            raise ConnectionError("refused")
        return [KeyValue(key, b"n1", 1, self.written, 0)] if self.written else [], self.written


class StalenessTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.mono = [100.0]
        self.etcd = FakeEtcd()
        self.registry = Registry()
        self.cluster = EtcdCluster(self.etcd, Layout(b"/skydns/"), self.registry,  # type: ignore[arg-type]
                                   self.clock, "n1", max_staleness=10,
                                   monotonic=lambda: self.mono[0])  # fmt: skip
        self.authority = SkyDNSAuthority(self.registry, self.clock, "skydns.local",
                                         unavailable=self.cluster.unavailable)  # fmt: skip

    def probe(self, seconds: float = PROBE_INTERVAL) -> None:
        self.mono[0] += seconds
        self.successResultOf(self.cluster.probe())

    def answers(self) -> bool:
        try:
            self.authority.resolution(b"skydns.local", 6)  # SOA
        except RegistryUnavailable:
            return False
        return True

    def test_not_ready_and_servfail_until_read(self) -> None:
        self.assertFalse(self.cluster.is_ready())
        self.assertEqual(self.cluster.status()["not_ready_because"], "not read from etcd yet")
        self.assertFalse(self.answers())
        self.cluster.mirror.problem = None  # (the first read done)
        self.probe()
        self.assertTrue(self.cluster.is_ready())
        self.assertTrue(self.answers())

    def test_dns_answers_for_max_staleness_then_servfail_then_recovers(self) -> None:
        """etcd gone: /ready says so within three probes, DNS answers on for
        ``--etcd-max-staleness``, then SERVFAIL (cached answers dropped);
        etcd back: both recover, no restart."""
        self.cluster.mirror.problem = None
        self.probe()
        version = self.registry.version
        self.etcd.up = False
        self.probe(2 * PROBE_INTERVAL)
        self.assertTrue(self.cluster.is_ready())  # (one probe missed)
        self.probe(2 * PROBE_INTERVAL)
        self.assertFalse(self.cluster.is_ready())
        self.assertEqual(self.cluster.status()["not_ready_because"], "etcd does not answer")
        self.probe(8)
        self.assertTrue(self.answers())
        self.probe(1.01)
        self.assertFalse(self.answers())
        self.assertGreater(self.registry.version, version)  # caches told to drop answers
        self.etcd.up = True
        self.probe()
        self.assertTrue(self.answers())
        self.assertTrue(self.cluster.is_ready())

    def test_no_answer_revalidated_while_stale(self) -> None:
        """The fast path's answers set aside at a registry change are reused
        only if the authority vouches for them: never while stale."""
        self.registry.apply(Register(Service(uuid="u1", name="web", environment="prod",
                                             region="", version="", host="10.0.0.1", port=80,
                                             ttl=30), self.clock.seconds()))  # fmt: skip
        self.cluster.mirror.problem = None
        self.probe()
        sources = self.authority.resolution(b"web.prod.skydns.local", 33).sources
        self.assertTrue(self.authority.unchanged(sources))
        self.etcd.up = False
        self.probe(11)
        self.assertFalse(self.authority.unchanged(sources))

    def test_a_watch_left_behind_is_restarted(self) -> None:
        """etcd answers but the watch has not brought its last write for
        three probes: the watch is dropped and resumed."""
        restarted: list[str] = []
        self.cluster.mirror.restart_watch = restarted.append  # type: ignore[method-assign]
        self.cluster.mirror.problem = None
        self.etcd.written = 5
        for _ in range(3):
            self.probe()
        self.assertEqual(len(restarted), 1)
        self.assertIn("revision 5", restarted[0])


class Unavailable(LocalCluster):
    def propose(self, command: Command) -> Deferred[Any]:
        return fail(StoreUnavailable("etcd did not take the write: no etcd endpoint answered"))


class AnswerTests(SynchronousTestCase):
    def test_a_write_etcd_cannot_take_is_503_with_the_reason(self) -> None:
        clock = Clock()
        api = make_api(Unavailable(Registry(), clock=clock), clock, "skydns.local")
        treq: Any = StubTreq(api.resource())
        d = treq.put("http://127.0.0.1/skydns/services/a",
                     data=json.dumps({"Host": "10.0.0.1", "Port": 80, "TTL": 9}).encode())
        response = self.successResultOf(d)
        self.assertEqual(response.code, 503)
        body = json.loads(self.successResultOf(treq.content(response)))
        self.assertEqual(body["error"], "etcd did not take the write: no etcd endpoint answered")
        self.assertTrue(response.headers.hasHeader(b"Retry-After"))



