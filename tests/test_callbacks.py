"""Tests for skydns.callbacks: the HTTP DELETE sent when a watched service leaves."""

from __future__ import annotations

import json
from typing import Any, cast

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request

from skydns.callbacks import CallbackNotifier, HTTPClient, callback_url
from skydns.commands import AddCallback, Expire, Register, Renew, Unregister
from skydns.names import Callback, Service
from skydns.registry import Applied, Instance, Outcome, Registry, Removal
from skydns.testing import LocalCluster


def service(uuid: str = "u1", ttl: int = 30) -> Service:
    return Service(uuid, "rails", "production", "east", "1.0.1", "web1.example.com", 8080, ttl)


def callback(uuid: str = "cb1", reply: str = "10.0.0.9", port: int = 9000) -> Callback:
    return Callback(uuid, "rails", "production", "", "", "", reply, port)


class Recorder(Resource):
    """Records every request; answers with ``code``."""

    isLeaf = True

    def __init__(self, code: int = 200) -> None:
        super().__init__()
        self.code = code
        self.requests: list[tuple[bytes, bytes, bytes, dict[str, Any]]] = []
        self.content_types: list[bytes | None] = []

    def render(self, request: Request) -> bytes:
        assert request.content is not None
        self.requests.append((
            request.method,
            request.getHeader(b"host") or b"",
            request.uri,
            json.loads(request.content.read()),
        ))
        self.content_types.append(request.getHeader(b"content-type"))
        request.setResponseCode(self.code)
        return b"ok"


class FailingClient:
    def __init__(self) -> None:
        self.urls: list[Any] = []

    def delete(self, url: Any, **kwargs: Any) -> Deferred[Any]:
        self.urls.append(url)
        return fail(ConnectionRefusedError("nobody home"))


class HangingClient:
    def __init__(self) -> None:
        self.requests: list[Deferred[Any]] = []

    def delete(self, url: Any, **kwargs: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.requests.append(d)
        return d


class URLTests(SynchronousTestCase):
    def test_urls(self) -> None:
        """The URL is http://Reply:Port/skydns/callbacks/<cbuuid>; IPv6 bracketed."""
        self.assertEqual(callback_url(callback()),
                         "http://10.0.0.9:9000/skydns/callbacks/cb1")
        self.assertEqual(callback_url(callback(reply="hook.example.com", port=80)),
                         "http://hook.example.com:80/skydns/callbacks/cb1")
        self.assertEqual(callback_url(callback(reply="2001:db8::9")),
                         "http://[2001:db8::9]:9000/skydns/callbacks/cb1")


class NotifierTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.recorder = Recorder()
        self.notifier = CallbackNotifier(cast(HTTPClient, StubTreq(self.recorder)))
        self.registry = Registry()
        self.cluster = LocalCluster(self.registry)
        self.cluster.add_apply_listener(self.notifier.notify)

    def test_unregister_sends_delete_with_service_json(self) -> None:
        """Unregistering a watched service sends one DELETE with its JSON."""
        self.cluster.propose(Register(service(), 100.0))
        self.cluster.propose(AddCallback(callback(), 101.0))
        self.assertEqual(self.recorder.requests, [])
        self.cluster.propose(Unregister("u1", 110.0))
        self.assertEqual(len(self.recorder.requests), 1)
        method, host, uri, body = self.recorder.requests[0]
        self.assertEqual((method, host, uri), (b"DELETE", b"10.0.0.9:9000",
                                                b"/skydns/callbacks/cb1"))
        self.assertEqual(body["UUID"], "u1")
        self.assertEqual(body["Name"], "rails")
        self.assertEqual(body["Host"], "web1.example.com")
        self.assertEqual(body["Port"], 8080)
        self.assertEqual(body["TTL"], 20)
        self.assertEqual(self.recorder.content_types, [b"application/json"])
        self.assertEqual(self.notifier.pending(), 0)

    def test_expire_sends_each_callback_once(self) -> None:
        """Expiry notifies every callback of every removed instance, once."""
        self.cluster.propose(Register(service("u1", ttl=5), 100.0))
        self.cluster.propose(Register(service("u2", ttl=5), 100.0))
        self.cluster.propose(AddCallback(callback("k1"), 101.0))
        self.cluster.propose(AddCallback(callback("k2", reply="2001:db8::9"), 101.0))
        self.cluster.propose(Renew("u1", 50, 102.0))  # renewals send nothing
        self.cluster.propose(Expire(("u1", "u2"), 106.0))
        self.cluster.propose(Expire(("u1", "u2"), 108.0))
        sent = sorted((uri, body["UUID"], host) for _, host, uri, body in self.recorder.requests)
        self.assertEqual(sent, [
            (b"/skydns/callbacks/k1", "u2", b"10.0.0.9:9000"),
            (b"/skydns/callbacks/k2", "u2", b"[2001:db8::9]:9000"),
        ])
        self.cluster.propose(Expire(("u1",), 200.0))
        self.assertEqual(len(self.recorder.requests), 4)

    def test_not_live_sends_nothing(self) -> None:
        """A replayed (not live) apply sends no callbacks."""
        removal = Removal(Instance(service(), 130.0), (callback(),))
        self.notifier.notify(Unregister("u1", 110.0), Applied(Outcome.OK, (removal,)), False)
        self.assertEqual(self.recorder.requests, [])
        self.notifier(Unregister("u1", 110.0), Applied(Outcome.OK, (removal,)), True)
        self.assertEqual(len(self.recorder.requests), 1)
        self.notifier.on_applied(Unregister("u1", 110.0), Applied(Outcome.OK, (removal,)), True)
        self.assertEqual(len(self.recorder.requests), 2)

    def test_error_status_logged(self) -> None:
        """A non-2xx answer is logged, not raised."""
        self.recorder.code = 500
        removal = Removal(Instance(service(), 130.0), (callback(),))
        self.notifier.notify(Unregister("u1", 110.0), Applied(Outcome.OK, (removal,)), True)
        self.assertEqual(len(self.recorder.requests), 1)
        self.assertEqual(self.flushLoggedErrors(), [])


class FailureTests(SynchronousTestCase):
    def removal(self, *callbacks: Callback) -> Applied:
        return Applied(Outcome.OK, (Removal(Instance(service(), 130.0), callbacks),))

    def test_connection_failure_logged(self) -> None:
        """A refused connection is logged; the other callbacks still go out."""
        client = FailingClient()
        notifier = CallbackNotifier(client)
        notifier.notify(Unregister("u1", 110.0), self.removal(callback("a"), callback("b")),
                        True)
        self.assertEqual(len(client.urls), 2)
        self.assertEqual(len(self.flushLoggedErrors(ConnectionRefusedError)), 2)
        self.assertEqual(notifier.pending(), 0)

    def test_timeout(self) -> None:
        """With a clock, a request that hangs is abandoned after the timeout and logged."""
        clock = Clock()
        client = HangingClient()
        notifier = CallbackNotifier(client, clock=clock, timeout=5.0)
        notifier.notify(Unregister("u1", 110.0), self.removal(callback()), True)
        self.assertEqual(notifier.pending(), 1)
        clock.advance(5.0)
        self.assertEqual(notifier.pending(), 0)
        self.assertTrue(client.requests[0].called)
        self.assertEqual(len(self.flushLoggedErrors()), 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_stop_cancels_quietly(self) -> None:
        client = HangingClient()
        notifier = CallbackNotifier(client)
        notifier.notify(Unregister("u1", 110.0), self.removal(callback()), True)
        notifier.stop()
        self.assertEqual(notifier.pending(), 0)
        self.assertEqual(self.flushLoggedErrors(), [])
