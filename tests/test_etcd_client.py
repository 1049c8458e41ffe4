"""The etcd client's pure parts: prefix ranges and the watch stream's lines
(the calls themselves are tested against a real etcd in tests/e2e)."""

from __future__ import annotations

import base64
import json

from twisted.trial.unittest import SynchronousTestCase

from skydns.store.etcd.client import Compacted, EtcdClient, EtcdError, Event, prefix_end


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class PrefixTests(SynchronousTestCase):
    def test_prefix_end(self) -> None:
        self.assertEqual(prefix_end(b"/skydns/"), b"/skydns0")
        self.assertEqual(prefix_end(b"a\xff"), b"b")
        self.assertEqual(prefix_end(b"\xff\xff"), b"\0")


class WatchLineTests(SynchronousTestCase):
    def test_events_and_errors(self) -> None:
        seen: list[tuple[list[Event], int]] = []
        line = json.dumps({"result": {"header": {"revision": "7"}, "events": [
            {"kv": {"key": b64("/k/a"), "value": b64("v"), "create_revision": "5",
                    "mod_revision": "7", "lease": "9"}},
            {"type": "DELETE", "kv": {"key": b64("/k/b"), "mod_revision": "7"}},
        ]}}).encode()  # fmt: skip
        EtcdClient._watch_line(line, lambda events, revision: seen.append((events, revision)))
        events, revision = seen[0]
        self.assertEqual(revision, 7)
        self.assertEqual([(e.kind, e.kv.key, e.kv.value, e.kv.lease) for e in events],
                         [("put", b"/k/a", b"v", 9), ("delete", b"/k/b", b"", 0)])  # fmt: skip
        with self.assertRaises(Compacted):
            EtcdClient._watch_line(b'{"result":{"header":{"revision":"9"},'
                                   b'"compact_revision":"5","canceled":true}}', print)
        with self.assertRaises(EtcdError):
            EtcdClient._watch_line(b'{"error":{"grpc_code":14,"message":"unavailable"}}', print)
        # The "created" answer carries no events: nothing is reported.
        EtcdClient._watch_line(b'{"result":{"header":{"revision":"3"},"created":true}}',
                               lambda *a: seen.append(a))  # type: ignore[arg-type]
        self.assertEqual(len(seen), 1)
