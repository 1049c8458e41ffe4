"""An oversized request body is refused with 413 while it arrives (declared
Content-Length or chunked), through the real `make_site` HTTP channel,
and changes nothing; bodies within the limit are served as before."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from skydns.http.api import make_api
from skydns.http.limits import MAX_BODY
from skydns.http.site import make_site
from skydns.registry import Registry
from skydns.testing import LocalCluster

BODY = json.dumps({"Host": "10.0.0.1", "Port": 80}).encode()


class BodyLimitTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.registry = Registry()
        clock = Clock()
        clock.advance(1_700_000_000)
        cluster = LocalCluster(self.registry, clock=clock)
        site = make_site(make_api(cluster, clock, "skydns.local").resource())
        self.channel = site.buildProtocol(None)
        self.transport = StringTransport()
        assert self.channel is not None
        self.channel.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        assert self.channel is not None
        self.channel.dataReceived(data)

    def assert_refused(self, closed: bool = True) -> None:
        answer = self.transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:100])
        head, _, body = answer.partition(b"\r\n\r\n")
        self.assertIn(b"Content-Type: application/json", head)
        self.assertEqual(json.loads(body), {"error": f"body: larger than {MAX_BODY} bytes"})
        self.assertEqual(self.transport.disconnecting, closed)
        self.assertEqual(len(self.registry), 0)

    def test_huge_declared_length(self) -> None:
        """Refused and closed on the headers alone: no need to wait for it."""
        self.send(b"PUT /skydns/services/a HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 1000000000\r\n\r\n")  # fmt: skip
        self.assert_refused()

    def test_declared_length_a_little_over(self) -> None:
        """The 413 goes out at once; the body is read and dropped, so that a
        client sending all of it first still reads the answer; then closed."""
        length = MAX_BODY + 1000
        self.send(b"PUT /skydns/services/a HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: %d\r\n\r\n" % length)  # fmt: skip
        self.assert_refused(closed=False)
        self.send(b"x" * (length - 1))
        self.assertFalse(self.transport.disconnecting)
        self.send(b"x")
        self.assert_refused(closed=True)
        self.assertEqual(self.transport.value().count(b"HTTP/1.1"), 1)

    def test_chunked_body_over_the_limit(self) -> None:
        self.send(b"PUT /skydns/services/a HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        chunk = b"%x\r\n%s\r\n" % (16384, b"y" * 16384)
        for _ in range(4):
            self.send(chunk)
        self.assertEqual(self.transport.value(), b"")  # 64 KiB: not over yet
        self.send(b"1\r\nz\r\n")
        self.assert_refused(closed=False)
        for _ in range(70):  # a chunked body that never ends: cut off
            self.send(chunk)
        self.assert_refused(closed=True)

    def test_within_the_limit(self) -> None:
        self.send(b"PUT /skydns/services/a HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY))  # fmt: skip
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 201 "))
        self.assertEqual(len(self.registry), 1)


def put_on_one_connection(transport: StringTransport, count: int, metrics: Any = None) -> Registry:
    """PUT ``count`` services (k0, k1, ...) one after another on one
    keep-alive connection of the real `make_site` channel; the registry."""
    registry = Registry()
    clock = Clock()
    clock.advance(1_700_000_000)
    api = make_api(LocalCluster(registry, clock=clock), clock, "skydns.local", metrics=metrics)
    channel = make_site(api.resource()).buildProtocol(None)
    assert channel is not None
    channel.makeConnection(transport)
    head = b"PUT /skydns/services/k%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    for n in range(count):
        channel.dataReceived(head % (n, len(BODY)) + BODY)
    return registry


class KeepAliveTests(SynchronousTestCase):
    def test_one_connection_asks_for_its_address_once(self) -> None:
        """Requests on one keep-alive connection are each answered, and the
        socket's own address (a system call) is asked for once, not per request."""
        asked: list[object] = []
        transport = StringTransport()
        real = transport.getHost
        transport.getHost = lambda: asked.append(1) or real()  # type: ignore[method-assign]
        registry = put_on_one_connection(transport, 3)
        self.assertEqual(transport.value().count(b"HTTP/1.1 201 "), 3)
        self.assertEqual(len(registry), 3)
        self.assertEqual(len(asked), 1)
        self.assertFalse(transport.disconnecting)

    def test_route_matched_once_per_request(self) -> None:
        """The metrics label and Klein's dispatch share one match of the
        route table per request."""
        from skydns.http import kleinbypass as routing
        from skydns.metrics import Metrics

        calls: list[str] = []
        real = routing._quick_match

        def counting(table: Any, path: str, method: str) -> Any:
            calls.append(path)
            return real(table, path, method)

        self.patch(routing, "_quick_match", counting)
        transport = StringTransport()
        put_on_one_connection(transport, 2, Metrics())
        self.assertEqual(transport.value().count(b"HTTP/1.1 201 "), 2)
        self.assertEqual(calls, ["/skydns/services/k0", "/skydns/services/k1"])


class ChunkedBodyTests(SynchronousTestCase):
    def channel(self) -> tuple[Any, StringTransport, Registry]:
        registry = Registry()
        api = make_api(LocalCluster(registry, clock=Clock()), Clock(), "skydns.local")
        channel = make_site(api.resource()).buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        return channel, transport, registry

    def test_an_absurd_chunk_size_is_a_400_at_once(self) -> None:
        """A chunk declared bigger than any body the API takes (issue 17:
        ``ffffffffffffffffffff``) gets 400 and the connection closes, without
        waiting for bytes that will never come."""
        for size in (b"ffffffffffffffffffff", b"%x" % (MAX_BODY + 1)):
            channel, transport, registry = self.channel()
            channel.dataReceived(
                b"PUT /skydns/services/c1 HTTP/1.1\r\nHost: x\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n" + size + b"\r\nabc"
            )
            self.assertTrue(transport.value().startswith(b"HTTP/1.1 400 "), transport.value())
            self.assertTrue(transport.disconnecting)
            self.assertEqual(len(registry), 0)

    def test_a_chunked_body_within_the_limit_is_taken(self) -> None:
        channel, transport, registry = self.channel()
        channel.dataReceived(
            b"PUT /skydns/services/c1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n"
        )
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 201 "), transport.value())
        self.assertEqual(len(registry), 1)


class ConnectionCapTests(SynchronousTestCase):
    """``--max-http-connections``: past the cap, or past half of it from one
    client address, a new connection is closed as it is accepted; a slot
    comes back when a connection goes."""

    def setUp(self) -> None:
        self.clock = Clock()
        api = make_api(LocalCluster(Registry(), clock=self.clock), self.clock, "skydns.local")
        self.site = make_site(api.resource(), max_connections=4, clock=self.clock)

    def connect(self, host: str) -> Any:
        from twisted.internet.address import IPv4Address

        channel = self.site.buildProtocol(IPv4Address("TCP", host, 40000))
        if channel is not None:
            channel.makeConnection(StringTransport())
        return channel

    def test_per_client_then_in_all(self) -> None:
        greedy = [self.connect("192.0.2.7") for _ in range(2)]
        self.assertNotIn(None, greedy)
        self.assertIsNone(self.connect("192.0.2.7"))  # half of 4 from one address
        others = [self.connect("192.0.2.8"), self.connect("192.0.2.9")]
        self.assertNotIn(None, others)
        self.assertIsNone(self.connect("192.0.2.10"))  # all 4 held
        others[0].connectionLost(None)
        self.assertIsNotNone(self.connect("192.0.2.10"))
        greedy[0].connectionLost(None)
        self.assertIsNotNone(self.connect("192.0.2.7"))
        self.assertIsNone(self.connect("192.0.2.11"))  # all 4 held again
        self.assertEqual(len(self.site.slots), 4)

    def test_a_served_connection_gives_its_slot_back(self) -> None:
        channel = self.connect("192.0.2.7")
        channel.dataReceived(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertIn(b"HTTP/1.1 ", channel.transport.value())
        channel.connectionLost(None)
        self.assertEqual(len(self.site.slots), 0)

    def test_option(self) -> None:
        from twisted.python import usage

        from skydns.tap import Options

        options = Options()
        options.parseOptions([])
        self.assertEqual(options["max-http-connections"], 1024)
        for bad in ("0", "-1", "x"):
            with self.subTest(bad=bad), self.assertRaises(usage.UsageError):
                Options().parseOptions(["--max-http-connections", bad])
