"""``GET /skydns/services/``: pages, and a long list made a slice per reactor
turn with exactly the bytes the one-piece encoding gives."""

from __future__ import annotations

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from skydns.commands import Register
from skydns.http.listing import SLICE, page, page_arguments, render_list
from skydns.http.responses import APIError, render_json
from skydns.names import Service
from skydns.patterns import Pattern
from skydns.presentation import service_json
from skydns.registry import Registry


def registry_of(count: int) -> Registry:
    registry = Registry()
    for n in range(count):
        service = Service(f"u{n:05d}", "web", "prod", "east", "1", "10.0.0.1", 80, 600)
        registry.apply(Register(service, 1000.0))
    return registry


class ListingTests(SynchronousTestCase):
    def test_a_long_list_is_made_a_slice_per_turn(self) -> None:
        """Past `SLICE` instances the list is written a slice per reactor
        turn (so DNS is answered meanwhile); the bytes are those of the
        one-piece encoding."""
        instances = registry_of(2 * SLICE + 5).query(Pattern(), 1001.0)
        clock = Clock()
        request = DummyRequest([b""])
        d = ensureDeferred(render_list(request, instances, 1001.0, clock))
        self.assertNoResult(d)
        self.assertEqual(len(clock.getDelayedCalls()), 1)  # the next slice waits its turn
        self.assertEqual(len(request.written), 1)  # the first slice, at once
        clock.advance(0)  # (the turns after it run in this same advance)
        data = b"".join(request.written) + self.successResultOf(d)
        self.assertEqual(len(request.written), 3)
        views = [service_json(i, 1001.0) for i in instances]
        self.assertEqual(data, render_json(DummyRequest([b""]), 200, views))
        self.assertIsNone(request.responseHeaders.getRawHeaders(b"content-length"))

    def test_a_client_that_leaves_stops_the_listing(self) -> None:
        instances = registry_of(3 * SLICE).query(Pattern(), 1001.0)
        clock = Clock()
        request = DummyRequest([b""])
        d = ensureDeferred(render_list(request, instances, 1001.0, clock))
        request.finished = True
        clock.advance(0)
        self.assertEqual(self.successResultOf(d), b"")
        self.assertEqual(len(request.written), 1)

    def test_a_short_list_is_made_at_once(self) -> None:
        instances = registry_of(3).query(Pattern(), 1001.0)
        d = ensureDeferred(render_list(DummyRequest([b""]), instances, 1001.0, Clock()))
        self.assertEqual(
            self.successResultOf(d),
            render_json(DummyRequest([b""]), 200, [service_json(i, 1001.0) for i in instances]),
        )

    def test_pages(self) -> None:
        """``limit`` instances after ``after`` (UUIDs compared in lower case),
        and the UUID to ask after for the next page until the last one."""
        instances = registry_of(5).query(Pattern(), 1001.0)
        uuids = lambda chosen: [i.service.uuid for i in chosen]  # noqa: E731
        chosen, following = page(instances, 2, "")
        self.assertEqual((uuids(chosen), following), (["u00000", "u00001"], "u00001"))
        chosen, following = page(instances, 2, "U00001".lower())
        self.assertEqual((uuids(chosen), following), (["u00002", "u00003"], "u00003"))
        chosen, following = page(instances, 2, "u00003")
        self.assertEqual((uuids(chosen), following), (["u00004"], None))
        self.assertEqual(page(instances, None, "")[1], None)

    def test_bad_page_arguments_are_400s(self) -> None:
        self.assertEqual(page_arguments(None, None), (None, ""))
        self.assertEqual(page_arguments("10", "ABC"), (10, "abc"))
        for bad in ("0", "-1", "x", "1e3", "100001"):
            error = self.assertRaises(APIError, page_arguments, bad, None)
            self.assertEqual((error.code, error.extra), (400, {"field": "limit"}))
