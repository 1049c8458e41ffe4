"""Watchers at scale: how fast a change reaches 10,000 watchers, and what
they cost the node.

One ``twistd skydns`` node on loopback.  ``--watchers`` clients (10,000)
each watch one of ``--names`` names (1,000, so 10 watchers a name), then a
writer registers instances of random names at ``--rate`` changes a second
(100) for ``--seconds`` (10).  Each change reaches the watchers of its name.
Printed: the node's RSS growth per watcher, the latency from sending the
write to each delivery (the write is acknowledged after its commit, so this
is commit plus delivery: an upper bound of commit-to-delivery), its median,
p99 and max, the node's CPU per change, and the CPU per delivered event
beyond what the same writes cost with no watcher at all (mode ``none``,
run first).

Beside it, in the same invocation (``--mode both``, the default), the same
watchers as long polls (``GET /skydns/services/?query=…&index=N&wait=60s``,
asked again with the new index after each answer): the way to watch before
streams, and the way a client without SSE watches.

    python bench/watch.py [--watchers 10000] [--names 1000] [--rate 100]
                          [--seconds 10] [--mode both|sse|poll]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.e2e.harness import SkyDNSProcess  # noqa: E402


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    from twisted.internet import defer, protocol, reactor, task
    from twisted.internet.endpoints import TCP4ClientEndpoint

    node = SkyDNSProcess(["--no-forward", "--max-http-connections", str(args.watchers * 2 + 100)])
    node.start()
    node.wait_for("/ready")
    assert node.process is not None
    pid = node.process.pid
    sent_at: dict[str, float] = {}     # instance UUID -> when its PUT was sent
    latencies: list[float] = []
    connected: list[Any] = []

    def delivered(uuids: list[str]) -> None:
        now = time.monotonic()
        for uuid in uuids:
            if uuid in sent_at:
                latencies.append(now - sent_at[uuid])

    class Watcher(protocol.Protocol):
        """One SSE stream or one long-polling connection (HTTP/1.1 keep-alive)."""

        def __init__(self, name: str) -> None:
            self.name = name
            self.buffer = b""
            self.index: str | None = None  # none yet: the first ask reads the set

        def connectionMade(self) -> None:  # noqa: N802
            connected.append(self)
            self.ask()

        def ask(self) -> None:
            if mode == "sse":
                path = f"/skydns/watch?query={self.name}"
            elif self.index is None:
                path = f"/skydns/services/?query={self.name}"
            else:
                path = f"/skydns/services/?query={self.name}&index={self.index}&wait=60s"
            self.transport.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())

        def dataReceived(self, data: bytes) -> None:  # noqa: N802
            self.buffer += data
            if mode == "sse":
                *events, self.buffer = self.buffer.split(b"\n\n")
                for event in events:
                    if b"event: change" in event:
                        delivered([u.decode() for u in _uuids(event)])
                return
            while True:  # long poll: whole responses, Content-Length framed
                head, sep, rest = self.buffer.partition(b"\r\n\r\n")
                if not sep:
                    return
                length = int(_header(head, b"content-length") or 0)
                if len(rest) < length:
                    return
                body, self.buffer = rest[:length], rest[length:]
                index = _header(head, b"x-skydns-index")
                now = {u.decode() for u in _uuids(body)}
                if self.index is not None:
                    delivered(sorted(now - self.seen))
                self.seen = now
                if index is not None:
                    self.index = index.decode()
                self.ask()

        seen: set[str] = set()

    async def main() -> dict[str, Any]:
        base_rss = rss_kib(pid)
        endpoint_args = ("127.0.0.1", node.http_port)
        for i in range(args.watchers if mode != "none" else 0):
            name = f"svc{i % args.names}.production"
            endpoint = TCP4ClientEndpoint(reactor, *endpoint_args)
            await endpoint.connect(protocol.Factory.forProtocol(lambda n=name: Watcher(n)))
            if i % 500 == 499:
                await task.deferLater(reactor, 0.05, lambda: None)
        await task.deferLater(reactor, 2.0, lambda: None)  # every first answer read
        watching_rss = rss_kib(pid)
        import treq

        rng = random.Random(7)
        cpu_before = cpu_seconds(pid)
        started = time.monotonic()
        writes = []
        total = int(args.rate * args.seconds)
        for n in range(total):
            due = started + n / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                await task.deferLater(reactor, delay, lambda: None)
            uuid = f"c{n}"
            name = rng.randrange(args.names)
            body = (f'{{"Name":"svc{name}","Environment":"production","Host":"10.0.{n // 250}.'
                    f'{n % 250 + 1}","Port":80,"TTL":600}}').encode()  # fmt: skip
            sent_at[uuid] = time.monotonic()
            writes.append(treq.put(f"{node.url}/skydns/services/{uuid}", data=body))
        for d in writes:
            response = await d
            await response.content()
        await task.deferLater(reactor, 1.0, lambda: None)  # the last deliveries
        cpu = cpu_seconds(pid) - cpu_before
        return {"watchers": len(connected), "rss_per_watcher_kib": (watching_rss - base_rss)
                / max(1, len(connected)), "deliveries": len(latencies),
                "expected": total * args.watchers // args.names,
                "cpu_per_event_us": cpu / max(1, len(latencies)) * 1e6, "cpu": cpu,
                "changes": total,
                "latencies": sorted(latencies)}  # fmt: skip

    result: dict[str, Any] = {}

    def go(r: Any) -> Any:
        d = defer.ensureDeferred(main())
        d.addCallback(result.update)
        return d

    try:
        _react_once(go)
    finally:
        node.cleanup()
    return result


def _react_once(go: Any) -> None:
    """Run ``go(reactor)`` to completion in the global reactor (once per process)."""
    from twisted.internet import reactor

    failures: list[Any] = []
    d = go(reactor)
    d.addErrback(failures.append)
    d.addBoth(lambda _: reactor.stop())
    reactor.run()
    if failures:
        failures[0].raiseException()


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


_UUID = re.compile(rb'"UUID": ?"([^"]*)"')


def _uuids(data: bytes) -> list[bytes]:
    """The UUIDs of the services in a JSON text (compact or not)."""
    return _UUID.findall(data)


def report(mode: str, r: dict[str, Any], baseline: float | None) -> None:
    lat = r["latencies"]
    per_change = r["cpu"] / max(1, r["changes"]) * 1e3
    if mode == "none":
        print(f"none  no watchers: node CPU per change {per_change:5.2f} ms (the writes alone)")
        return
    if not lat:
        print(f"{mode}: no deliveries")
        return
    extra = ""
    if baseline is not None:
        extra = f"  delivery CPU/event {(r['cpu'] - baseline) / len(lat) * 1e6:6.1f} us"
    ms = [x * 1000 for x in lat]
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{mode:5} watchers {r['watchers']:6,}  RSS/watcher {r['rss_per_watcher_kib']:5.1f} KiB"
          f"  deliveries {r['deliveries']:7,}/{r['expected']:,}  send->delivery ms: median "
          f"{statistics.median(ms):6.1f} p99 {p99:6.1f} max {ms[-1]:7.1f}"
          f"  node CPU/change {per_change:5.2f} ms{extra}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watchers", type=int, default=10_000)
    parser.add_argument("--names", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--mode", choices=("both", "sse", "poll", "none"), default="both")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one mode in this process
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, args.watchers * 3 + 1000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    if args.one:
        import json

        result = run(args.one, args)
        print("RESULT " + json.dumps(result))
        return
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {args.watchers:,} watchers of "
          f"{args.names:,} names, {args.rate:g} changes/s for {args.seconds:g} s", flush=True)
    import json
    import subprocess

    modes = ("none", "sse", "poll") if args.mode == "both" else (args.mode,)
    baseline = None
    for mode in modes:  # each in a process of its own: one reactor run per process
        out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--one", mode],
                             capture_output=True, text=True)  # fmt: skip
        lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        if not lines:
            print(f"{mode}: failed\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
            continue
        result = json.loads(lines[0][len("RESULT "):])
        if mode == "none":
            baseline = result["cpu"]
        report(mode, result, baseline)


if __name__ == "__main__":
    main()
