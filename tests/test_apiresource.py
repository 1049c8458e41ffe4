"""`APIResource`: the API's Klein resource serving matched routes without
Klein's per-request reference cycle, with Klein's answers."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from klein import Klein
from klein.resource import KleinResource
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Request, Site

from skydns.http.api import make_api
from skydns.http.kleinbypass import APIResource, FastRoutes
from skydns.http.site import make_site
from skydns.registry import Registry
from skydns.testing import LocalCluster

BODY = (
    b'{"Name":"rails","Version":"1","Environment":"production","Region":"east",'
    b'"Host":"10.0.0.1","Port":80,"TTL":60}'
)


class Routes:
    """A small Klein app with an answer of each kind an endpoint may give."""

    app = Klein()

    def __init__(self) -> None:
        self.pending: list[Deferred[bytes]] = []
        self.handled: list[Failure] = []
        self.cancelled = 0

    @app.route("/bytes/<name>", methods=["GET"])
    def as_bytes(self, request: Request, name: str) -> bytes:
        return b"hello " + name.encode()

    @app.route("/text", methods=["GET"])
    def as_text(self, request: Request) -> str:
        return "caf\u00e9"

    @app.route("/none", methods=["GET"])
    def as_none(self, request: Request) -> None:
        request.setResponseCode(204)

    @app.route("/number", methods=["GET"])
    def as_number(self, request: Request) -> int:
        return 42

    @app.route("/fails", methods=["GET"])
    def fails(self, request: Request) -> bytes:
        raise ValueError("no such thing")

    @app.route("/later", methods=["POST"])
    async def later(self, request: Request) -> bytes:
        d: Deferred[bytes] = Deferred()
        self.pending.append(d)
        try:
            return await d
        except CancelledError:
            self.cancelled += 1
            raise

    @app.handle_errors(Exception)
    def on_error(self, request: Request, failure: Failure) -> bytes:
        self.handled.append(failure)
        if failure.check(ZeroDivisionError):
            raise RuntimeError("the error handler failed too")
        request.setResponseCode(418)
        return b"handled: " + str(failure.value).encode()


class Connection:
    """One HTTP/1.1 connection to a site over a `StringTransport`."""

    def __init__(self, site: Site) -> None:
        self.transport = StringTransport()
        self.channel = site.buildProtocol(None)
        assert self.channel is not None
        self.channel.callLater = Clock().callLater  # type: ignore[method-assign] # idle timeout
        self.channel.makeConnection(self.transport)

    def send(self, method: bytes, path: bytes, body: bytes = b"") -> None:
        self.channel.dataReceived(
            b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            % (method, path, len(body), body)
        )

    def answer(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data


class APIResourceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.routes = Routes()
        resource = APIResource(FastRoutes(self.routes.app), self.routes.on_error)
        self.connection = Connection(Site(resource))

    def get(self, path: bytes) -> bytes:
        self.connection.send(b"GET", path)
        return self.connection.answer()

    def test_answers_like_klein(self) -> None:
        """Bytes and text are the body (text as UTF-8), None an empty one."""
        self.assertTrue(self.get(b"/bytes/x").startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertIn(b"\r\nhello world\r\n", self.get(b"/bytes/world"))
        self.assertIn(b"\r\ncaf\xc3\xa9\r\n", self.get(b"/text"))
        self.assertTrue(self.get(b"/none").startswith(b"HTTP/1.1 204 "))

    def test_failure_goes_to_the_error_handler(self) -> None:
        answer = self.get(b"/fails")
        self.assertTrue(answer.startswith(b"HTTP/1.1 418 "))
        self.assertIn(b"\r\nhandled: no such thing\r\n", answer)
        self.assertEqual([f.type for f in self.routes.handled], [ValueError])

    def test_a_failing_error_handler_gives_500(self) -> None:
        self.connection.send(b"POST", b"/later")
        self.routes.pending.pop().errback(ZeroDivisionError())
        self.assertTrue(self.connection.answer().startswith(b"HTTP/1.1 500 "))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_an_answer_of_another_type_gives_500(self) -> None:
        self.assertTrue(self.get(b"/number").startswith(b"HTTP/1.1 500 "))
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    def test_a_later_answer(self) -> None:
        self.connection.send(b"POST", b"/later")
        self.assertEqual(self.connection.answer(), b"")
        self.routes.pending.pop().callback(b"done")
        self.assertIn(b"\r\ndone\r\n", self.connection.answer())

    def test_a_client_that_leaves_cancels_the_endpoint(self) -> None:
        """As with Klein: the endpoint's Deferred is cancelled, nothing is
        written and nothing is logged as an error."""
        self.connection.send(b"POST", b"/later")
        self.connection.channel.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.routes.cancelled, 1)
        self.assertEqual(self.connection.answer(), b"")
        self.assertEqual(self.routes.handled, [])

    def test_unmatched_requests_go_to_klein(self) -> None:
        """A path or method no route has, or a method the table leaves to
        werkzeug (OPTIONS), is Klein's: its 404 and 405 pass through the
        error handler."""
        self.assertTrue(self.get(b"/nothing/here").startswith(b"HTTP/1.1 418 "))
        self.connection.send(b"DELETE", b"/text")
        self.assertIn(b"handled: 405 ", self.connection.answer())
        self.connection.send(b"OPTIONS", b"/bytes/x")
        self.assertIn(b"handled: 405 ", self.connection.answer())

    def test_head_is_answered_without_a_body(self) -> None:
        self.connection.send(b"HEAD", b"/bytes/x")
        answer = self.connection.answer()
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "))
        self.assertNotIn(b"hello", answer)


class NoCycleTests(SynchronousTestCase):
    def put_all(self, site: Site, count: int) -> list[weakref.ref[Request]]:
        """PUT ``count`` services on one connection; weak references to the requests."""
        made: list[weakref.ref[Request]] = []
        factory = site.requestFactory

        def recording(*args: Any) -> Request:
            request = factory(*args)
            made.append(weakref.ref(request))
            return request

        site.requestFactory = recording
        connection = Connection(site)
        for n in range(count):
            connection.send(b"PUT", b"/skydns/services/k%d" % n, BODY)
        self.assertEqual(connection.answer().count(b"HTTP/1.1 201 "), count)
        return made

    def site(self) -> Site:
        clock = Clock()
        clock.advance(1_700_000_000)
        cluster = LocalCluster(Registry(), clock=clock)
        return make_site(make_api(cluster, clock, "skydns.local").resource())

    def test_answered_requests_are_freed_without_the_collector(self) -> None:
        """Each answered request is freed as soon as it is done, by reference
        counting: none waits for the cyclic garbage collector."""
        gc.collect()
        gc.disable()
        try:
            made = self.put_all(self.site(), 5)
            self.assertEqual([r for r in made if r() is not None], [])
        finally:
            gc.enable()

    def test_klein_render_leaves_them_to_the_collector(self) -> None:
        """Why `APIResource` exists: through Klein's own `render` the same
        requests stay alive until a collection."""
        site = self.site()
        inner = site.resource
        inner.render = lambda request: KleinResource.render(inner, request)  # type: ignore[method-assign]
        gc.collect()
        gc.disable()
        try:
            made = self.put_all(site, 5)
            self.assertEqual(len([r for r in made if r() is not None]), 5)
        finally:
            gc.enable()
        gc.collect()
        self.assertEqual([r for r in made if r() is not None], [])


class NotUTF8PathTests(SynchronousTestCase):
    def test_a_400_and_one_log_line_per_ten_seconds(self) -> None:
        """A path that is not UTF-8 once percent-decoded is the API's JSON
        400; it is logged once in 10 s, with no traceback (issue 17)."""
        from twisted.logger import globalLogPublisher

        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        clock = Clock()
        clock.advance(1_700_000_000)
        cluster = LocalCluster(Registry(), clock=clock)
        site = make_site(make_api(cluster, clock, "skydns.local").resource())
        connection = Connection(site)
        for path in (b"/skydns/services/%FF", b"/%c3%28", b"/skydns/%80"):
            connection.send(b"GET", path)
            answer = connection.answer()
            self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), answer)
            self.assertIn(b'"error": "the path is not UTF-8 text"', answer)
        logged = [e for e in events if "not UTF-8" in str(e.get("log_format"))]
        self.assertEqual(len(logged), 1)
        self.assertFalse([e for e in events if e.get("log_failure") is not None])
        clock.advance(10)
        connection.send(b"GET", b"/%ff")
        self.assertEqual(len([e for e in events if "not UTF-8" in str(e.get("log_format"))]), 2)
