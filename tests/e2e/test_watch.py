"""Watch streams from real nodes: every node serves them from its own
applied state, so a follower's stream matches the leader's, event for event;
``skydns watch`` prints them as they happen."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.e2e.harness import SkyDNSProcess, start_cluster, status
from tests.e2e.harness import http as request

BOUND = 20.0
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def service(host: str, **fields: Any) -> dict[str, Any]:
    return {"Name": "rails", "Environment": "production", "Region": "east",
            "Host": host, "Port": 80, "TTL": 600, **fields}  # fmt: skip


class Stream:
    """An SSE stream read in a thread: the events as (id, event, data)."""

    def __init__(self, node: SkyDNSProcess, query: str) -> None:
        self.events: list[tuple[str, str, Any]] = []
        self.connection = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=BOUND)
        self.connection.request("GET", f"/skydns/watch?query={query}")
        self.response = self.connection.getresponse()
        assert self.response.status == 200
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        try:
            while True:
                data = self.response.read1(65536)  # what has come, without waiting for more
                if not data:
                    return
                buffer += data
                *blocks, buffer = buffer.split(b"\n\n")
                for block in blocks:
                    fields = dict(line.split(": ", 1) for line in block.decode().split("\n")
                                  if line and not line.startswith(":"))  # fmt: skip
                    if "data" in fields:
                        self.events.append((fields["id"], fields["event"],
                                            json.loads(fields["data"])))  # fmt: skip
        except Exception:  # noqa: BLE001 - any way the stream ends under us
            pass  # (IncompleteRead, a closed socket): the test is over

    def wait_for(self, count: int) -> list[tuple[str, str, Any]]:
        deadline = time.monotonic() + BOUND
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.events)

    def close(self) -> None:
        # Shut the socket down first: the reading thread holds the buffer's
        # lock until data comes, and close() would wait for it.
        if self.connection.sock is not None:
            try:
                self.connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.connection.close()


def comparable(event: tuple[str, str, Any]) -> tuple[str, str, Any]:
    """An event without what depends on the instant it was sent (TTL left)."""
    index, kind, data = event

    def strip(services: list[dict[str, Any]]) -> list[tuple[str, ...]]:
        return sorted(tuple(f"{k}={v}" for k, v in sorted(s.items()) if k != "TTL")
                      for s in services)  # fmt: skip

    return index, kind, {k: strip(v) if isinstance(v, list) else v for k, v in data.items()}


class FollowerStreamTests(SynchronousTestCase):
    def test_a_followers_stream_matches_the_leaders(self) -> None:
        nodes = start_cluster(self)
        leader_id = status(nodes[0])["leader"]
        leader = next(n for n in nodes if n.node_id == leader_id)
        follower = next(n for n in nodes if n is not leader)
        streams = [Stream(leader, "rails.production"), Stream(follower, "rails.production")]
        for stream in streams:
            self.addCleanup(stream.close)
            stream.wait_for(1)
        url = f"{follower.url}/skydns/services"
        self.assertEqual(request("PUT", f"{url}/w1", service("10.0.0.1"))[0], 201)
        self.assertEqual(request("PUT", f"{url}/w2", service("10.0.0.2"))[0], 201)
        request("PATCH", f"{url}/w1", {"TTL": 300})                     # no event
        request("PUT", f"{url}/x1", service("10.0.0.3", Name="web"))    # no event
        self.assertEqual(request("PATCH", f"{url}/w2", {"Drain": True})[0], 200)
        self.assertEqual(request("DELETE", f"{url}/w1")[0], 200)
        on_leader = [comparable(e) for e in streams[0].wait_for(5)]
        on_follower = [comparable(e) for e in streams[1].wait_for(5)]
        self.assertEqual([kind for _, kind, _ in on_leader], ["reset"] + ["change"] * 4)
        self.assertEqual(on_follower, on_leader)


class CommandTests(SynchronousTestCase):
    def test_skydns_watch_prints_changes_until_stopped(self) -> None:
        node = SkyDNSProcess()
        self.addCleanup(node.cleanup)
        node.start()
        node.wait_for("/ready")
        env = dict(os.environ, SKYDNS_SERVER=node.url)
        env.pop("SKYDNS_SECRET", None)
        watcher = subprocess.Popen(
            [sys.executable, "-m", "skydns.cli", "watch", "rails.production", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.addCleanup(lambda: watcher.poll() is None and watcher.kill())
        assert watcher.stdout is not None
        first = json.loads(watcher.stdout.readline())
        self.assertEqual((first["event"], first["services"]), ("reset", []))
        request("PUT", f"{node.url}/skydns/services/c1", service("10.0.0.9"))
        second = json.loads(watcher.stdout.readline())
        self.assertEqual([s["UUID"] for s in second["added"]], ["c1"])
        # SIGTERM: a test runner may start us with SIGINT ignored (tox does),
        # which the child inherits; the command ends on either.
        watcher.send_signal(signal.SIGTERM)
        self.assertEqual(watcher.wait(BOUND), 0, watcher.stderr.read() if watcher.stderr else "")
