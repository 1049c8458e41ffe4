"""Watching over HTTP (SPEC.md §6): the long poll on the list route and the
Server-Sent Events stream, through the real API over a LocalCluster."""

from __future__ import annotations

import json
from typing import Any, Optional

import treq
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from skydns.http.api import make_api
from skydns.registry import Registry
from skydns.testing import LocalCluster
from skydns.watch.hub import WatchHub
from skydns.watch.streams import MAX_QUEUED, EventStream

BASE = "http://127.0.0.1:8080"
START = 1_700_000_000.0
RAILS = b'{"Name":"rails","Environment":"production","Host":"10.0.0.1","Port":80,"TTL":30}'
WEB = b'{"Name":"web","Environment":"production","Host":"10.0.0.2","Port":80,"TTL":30}'


def events(chunks: list[bytes]) -> list[dict[str, Any]]:
    """The SSE events in ``chunks``: {"id", "event", "data"} each (comments skipped)."""
    found = []
    for block in b"".join(chunks).decode().split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":") or ": " not in line:
                continue
            key, value = line.split(": ", 1)
            fields[key] = json.loads(value) if key == "data" else value
        if fields:
            found.append(fields)
    return found


class WatchHTTPTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.registry = Registry()
        self.hub = WatchHub(self.registry)
        cluster = LocalCluster(self.registry, clock=self.clock)
        self.api = make_api(cluster, self.clock, "skydns.local",
                            secret="s3cret", watches=self.hub)  # fmt: skip
        self.client: Any = StubTreq(self.api.resource())

    def call(self, method: str, path: str, body: Optional[bytes] = None,
             headers: Optional[dict[str, list[str]]] = None) -> Any:  # fmt: skip
        headers = {"Authorization": ["s3cret"], **(headers or {})}
        d = self.client.request(method, BASE + path, data=body, headers=headers)
        self.client.flush()
        return d

    def watch(self, query: str, last: Optional[str] = None) -> tuple[list[bytes], Any]:
        """Open a stream; its chunks so far (growing) and the collecting Deferred."""
        headers = {"Last-Event-ID": [last]} if last is not None else None
        response = self.successResultOf(self.call("GET", f"/skydns/watch?query={query}",
                                                  headers=headers))  # fmt: skip
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("Content-Type"),
                         ["text/event-stream; charset=utf-8"])  # fmt: skip
        chunks: list[bytes] = []
        collecting = treq.collect(response, chunks.append)
        self.client.flush()
        return chunks, collecting

    def write(self, method: str, path: str, body: Optional[bytes] = None) -> int:
        code: int = self.successResultOf(self.call(method, path, body)).code
        self.client.flush()
        return code

    def test_stream_of_a_pattern(self) -> None:
        """The whole set, then one event per change of the set, each with
        its index as id: register, drain, remove; not a renewal, not web."""
        self.write("PUT", "/skydns/services/r0", RAILS)
        chunks, _ = self.watch("rails.production")
        self.write("PUT", "/skydns/services/r1", RAILS)
        self.write("PATCH", "/skydns/services/r1", b'{"TTL": 60}')
        self.write("PUT", "/skydns/services/w1", WEB)
        self.write("PATCH", "/skydns/services/r1", b'{"Drain": true}')
        self.write("DELETE", "/skydns/services/r0")
        got = events(chunks)
        self.assertEqual([e["event"] for e in got], ["reset", "change", "change", "change"])
        self.assertEqual([s["UUID"] for s in got[0]["data"]["services"]], ["r0"])
        self.assertEqual([s["UUID"] for s in got[1]["data"]["added"]], ["r1"])
        self.assertEqual([(s["UUID"], s["Drain"]) for s in got[2]["data"]["changed"]],
                         [("r1", True)])  # fmt: skip
        self.assertEqual([s["UUID"] for s in got[3]["data"]["removed"]], ["r0"])
        self.assertEqual([int(e["id"]) for e in got], [e["data"]["index"] for e in got])
        self.assertEqual(int(got[-1]["id"]), self.hub.index)
        self.assertEqual(len(self.hub), 1)

    def test_resume_after_a_disconnect_loses_and_repeats_nothing(self) -> None:
        """Reconnecting with Last-Event-ID gives exactly the changes made
        while away; one from before the history gives the whole set."""
        chunks, collecting = self.watch("rails.production")
        self.write("PUT", "/skydns/services/r1", RAILS)
        last = events(chunks)[-1]["id"]
        # The connection drops (what twisted.web tells a producer then).
        (stream,) = self.hub._all()
        stream.stopProducing()  # type: ignore[attr-defined]
        self.client.flush()
        self.successResultOf(collecting)  # the stream ended
        self.assertEqual(len(self.hub), 0)
        self.write("PUT", "/skydns/services/r2", RAILS)
        self.write("PUT", "/skydns/services/w9", WEB)
        self.write("DELETE", "/skydns/services/r1")
        chunks, _ = self.watch("rails.production", last=last)
        self.write("PUT", "/skydns/services/r3", RAILS)
        got = events(chunks)
        self.assertEqual([(list(e["data"].get("added", [])) and e["data"]["added"][0]["UUID"],
                           [s["UUID"] for s in e["data"].get("removed", [])]) for e in got],
                         [("r2", []), ([], ["r1"]), ("r3", [])])  # fmt: skip
        chunks, _ = self.watch("rails.production", last="not-a-number")
        self.assertEqual(events(chunks)[0]["event"], "reset")

    def test_long_poll(self) -> None:
        """?index=N waits for the first change of the pattern after N and
        answers with the list and X-SkyDNS-Index; a renewal wakes nobody;
        wait runs out; a bad wait is a 400."""
        self.write("PUT", "/skydns/services/r1", RAILS)
        listed = self.successResultOf(self.call("GET", "/skydns/services/?query=rails.production"))
        index = listed.headers.getRawHeaders("X-SkyDNS-Index")[0]
        d = self.call("GET", f"/skydns/services/?query=rails.production&index={index}&wait=10s")
        self.write("PATCH", "/skydns/services/r1", b'{"TTL": 60}')
        self.write("PUT", "/skydns/services/w1", WEB)
        self.assertNoResult(d)
        self.write("PUT", "/skydns/services/r2", RAILS)
        response = self.successResultOf(d)
        self.assertEqual(int(response.headers.getRawHeaders("X-SkyDNS-Index")[0]),
                         self.hub.index)  # fmt: skip
        body = self.successResultOf(response.json())
        self.assertEqual(sorted(s["UUID"] for s in body), ["r1", "r2"])
        d = self.call("GET", f"/skydns/services/?query=rails.production&index={self.hub.index}"
                             "&wait=2s")  # fmt: skip
        self.clock.advance(2.2)  # the wait, and its jitter (at most 1/16)
        self.client.flush()
        self.assertEqual(self.successResultOf(d).code, 200)
        # wait=0: the answer as it is, at once (no timer to run first)
        d = self.call("GET", f"/skydns/services/?query=rails.production&index={self.hub.index}"
                             "&wait=0")  # fmt: skip
        self.assertEqual(self.successResultOf(d).code, 200)
        self.assertEqual(self.successResultOf(self.call(
            "GET", "/skydns/services/?index=1&wait=soon")).code, 400)  # fmt: skip

    def test_the_secret_guards_the_stream(self) -> None:
        d = self.client.request("GET", BASE + "/skydns/watch?query=rails.production")
        self.client.flush()
        self.assertEqual(self.successResultOf(d).code, 401)


class SlowReaderTests(SynchronousTestCase):
    def test_a_reader_that_does_not_read_is_cut_off(self) -> None:
        """While the connection is full, events queue up to MAX_QUEUED;
        one more and the stream is cut off and counted as dropped."""
        from skydns.patterns import Pattern
        from skydns.watch.changes import Delta

        written: list[bytes] = []
        cut: list[bool] = []
        counted: list[str] = []
        stream = EventStream(Pattern(), Registry(), Clock(), written.append,
                             lambda: cut.append(True), counted.append)  # fmt: skip
        stream.start([], 0)
        stream.pauseProducing()
        from skydns.names import Service

        one = Delta(1, added=(Service("u", "n", "e", "r", "v", "10.0.0.1", 1, 30),))
        for _ in range(MAX_QUEUED):
            stream.changed(one)
        self.assertEqual((written, cut), ([], []))
        stream.changed(one)
        self.assertEqual(cut, [True])
        self.assertTrue(stream.finished.called)
        self.assertEqual(counted.count("dropped"), 1)
        stream.resumeProducing()
        self.assertEqual(written, [])  # nothing more for a stream cut off


class ClientWatchTests(SynchronousTestCase):
    """`SkyDNSClient.watch` against the real API: events in order, and a
    reconnection that resumes from the last event after the stream drops."""

    def setUp(self) -> None:
        from skydns.client import SkyDNSClient

        self.clock = Clock()
        self.clock.advance(START)
        self.registry = Registry()
        self.hub = WatchHub(self.registry)
        cluster = LocalCluster(self.registry, clock=self.clock)
        api = make_api(cluster, self.clock, "skydns.local", watches=self.hub)
        self.stub: Any = StubTreq(api.resource())
        self.client = SkyDNSClient(BASE, http=self.stub, clock=self.clock)

    def put(self, uuid: str, body: bytes = RAILS) -> None:
        self.stub.request("PUT", f"{BASE}/skydns/services/{uuid}", data=body)
        self.stub.flush()

    def next(self, watch: Any) -> Any:
        d = watch.__anext__()
        self.stub.flush()
        from twisted.internet.defer import ensureDeferred

        return self.successResultOf(ensureDeferred(d))

    def test_events_then_resume_after_a_drop(self) -> None:
        self.put("r0")
        watch = self.client.watch("rails.production")
        self.stub.flush()
        first = self.next(watch)
        self.assertEqual((first.kind, [s.uuid for s in first.services]), ("reset", ["r0"]))
        self.put("r1")
        self.assertEqual([s.uuid for s in self.next(watch).added], ["r1"])
        (stream,) = self.hub._all()
        stream.stopProducing()  # the connection drops
        self.stub.flush()
        self.put("r2")          # made while the client is away
        self.put("w1", WEB)
        self.clock.advance(0.5)  # the client's first backoff
        self.stub.flush()
        resumed = self.next(watch)
        self.assertEqual((resumed.kind, [s.uuid for s in resumed.added]), ("change", ["r2"]))
        self.assertEqual(watch.connections, 2)
        self.put("r3")
        self.assertEqual([s.uuid for s in self.next(watch).added], ["r3"])
        watch.close()
        from twisted.internet.defer import ensureDeferred

        ended = ensureDeferred(watch.__anext__())
        self.failureResultOf(ended, StopAsyncIteration)
