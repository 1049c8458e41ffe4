"""Write throughput, latency and failover of a 3-node SkyDNS cluster on loopback.

Starts three real ``twistd skydns`` processes (fsync on, data dirs in a
temporary directory), then prints:

- registrations per second and p50/p99 latency with 1, 16 and 64 concurrent
  clients (HTTP/1.1 keep-alive, each client sequential), sent to the leader
  and to a follower (forwarded);
- lease renewals (PATCH) per second with 64 clients, against the 1,000/s
  that 10,000 instances renewing every 10 s need;
- failover: the median, over several trials, of the time from ``kill -9`` of
  the leader to the first write acknowledged by a survivor, while a DNS
  client queries a follower every 10 ms (failed queries are counted).

    python bench/raft_write.py [--seconds 5] [--runs 3] [--trials 5] [--clients 1,16,64]

With ``--runs N`` the load part runs N times, each on a fresh cluster, and
each line shows the median of the N runs' figures.  Registrations spread over
``NAMES`` service names, so the per-name instance limit (10,000) is never hit.

Only loopback addresses are used; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.e2e.harness import SkyDNSProcess, dns_query, free_port, http  # noqa: E402

BODY = {
    "Name": "bench", "Environment": "production", "Region": "east", "Version": "1.0",
    "Host": "127.0.0.10", "Port": 8080, "TTL": 600,
}  # fmt: skip

#: Service names the registrations are spread over.
NAMES = 50


def register_body(number: int) -> dict[str, Any]:
    return dict(BODY, Name=f"bench{number % NAMES}")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


#: label -> one (per second, p50 ms, p99 ms, ok, failed) per run, and its note.
RESULTS: dict[str, list[tuple[float, float, float, int, int]]] = {}
NOTES: dict[str, str] = {}


def show(label: str, ok: int, failed: int, lat: list[float], elapsed: float,
         note: str = "") -> None:  # fmt: skip
    p50, p99 = (percentile(lat, f) * 1e3 if lat else float("nan") for f in (0.5, 0.99))
    RESULTS.setdefault(label, []).append((ok / elapsed, p50, p99, ok, failed))
    NOTES[label] = note
    print(f"{label}: {ok / elapsed:7.0f}/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   "
          f"({ok} ok, {failed} failed{note})", flush=True)  # fmt: skip


def show_medians() -> None:
    """Each line's median over the runs (each figure's own median)."""
    for label, runs in RESULTS.items():
        rate, p50, p99 = (statistics.median(r[i] for r in runs) for i in range(3))
        ok, failed = sum(r[3] for r in runs), sum(r[4] for r in runs)
        print(f"{label}: {rate:7.0f}/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   "
              f"(median of {len(runs)}; {ok} ok, {failed} failed{NOTES[label]})",
              flush=True)  # fmt: skip


class Cluster:
    def __init__(self, root: str, size: int = 3) -> None:
        ids = [f"n{i}" for i in range(1, size + 1)]
        ports = {i: free_port() for i in ids}
        peers = ",".join(f"{i}=127.0.0.1:{ports[i]}" for i in ids)
        self.nodes = [
            SkyDNSProcess(
                extra_args=["--peers", peers], node_id=i, raft_port=ports[i],
                data_dir=tempfile.mkdtemp(prefix=f"{i}-", dir=root),
            )
            for i in ids
        ]  # fmt: skip

    def start(self) -> None:
        for node in self.nodes:
            node.start(wait=False)
        for node in self.nodes:
            node.wait_for("/ready", 30)
        _, status = http("GET", self.nodes[0].url + "/skydns/cluster")
        if len(status.get("members", [])) != len(self.nodes):
            raise SystemExit("twistd skydns did not start a Raft cluster (is tap.py wired?)")

    def alive(self) -> list[SkyDNSProcess]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def leader(self, timeout: float = 10.0) -> SkyDNSProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.alive():
                try:
                    _, status = http("GET", node.url + "/skydns/cluster", timeout=1.0)
                except OSError:
                    continue
                if isinstance(status, dict) and status.get("leader") == node.node_id:
                    return node
            time.sleep(0.02)
        raise RuntimeError("no leader")

    def stop(self) -> None:
        for node in self.nodes:
            try:
                node.stop()
            except AssertionError:
                node.cleanup()


class Client:
    """One HTTP/1.1 keep-alive connection doing one request at a time."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: object) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        data = json.dumps(body).encode()
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n"
            "Content-Type: application/json\r\n\r\n".encode() + data
        )
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def load(port: int | list[int], clients: int, seconds: float, method: str,
               paths: list[str], body: object | Callable[[int], object],
               ) -> tuple[int, int, list[float], float]:  # fmt: skip
    """Run ``clients`` sequential clients for ``seconds`` (spread over the
    ``port`` list); each takes the next path from ``paths`` and sends
    ``body``, or ``body(n)`` for the n-th path when it is callable.  Returns
    (ok, failed, latencies, elapsed)."""
    ports = port if isinstance(port, list) else [port]
    latencies: list[float] = []
    failed = 0
    todo = iter(enumerate(paths))
    deadline = time.perf_counter() + seconds

    async def run(number: int) -> None:
        nonlocal failed
        client = Client(ports[number % len(ports)])
        try:
            while time.perf_counter() < deadline:
                step = next(todo, None)
                if step is None:
                    return
                number, path = step
                payload = body(number) if callable(body) else body
                start = time.perf_counter()
                code = await client.request(method, path, payload)
                if 200 <= code < 300:
                    latencies.append(time.perf_counter() - start)
                else:
                    failed += 1
        finally:
            client.close()

    start = time.perf_counter()
    await asyncio.gather(*(run(number) for number in range(clients)))
    return len(latencies), failed, latencies, time.perf_counter() - start


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CPUMeter:
    """CPU each node and this load generator spent per successful request."""

    def __init__(self, cluster: Cluster, leader: SkyDNSProcess) -> None:
        nodes = sorted(cluster.alive(), key=lambda n: n is not leader)
        self.names = ["leader" if n is leader else n.node_id for n in nodes]
        self.pids = [n.process.pid for n in nodes if n.process is not None]
        self.start = self.now()

    def now(self) -> list[float]:
        return [cpu_seconds(pid) for pid in self.pids] + [time.process_time()]

    def report(self, ok: int) -> None:
        spent = [b - a for a, b in zip(self.start, self.now(), strict=True)]
        parts = [f"{n} {s * 1e3 / max(ok, 1):.3f}" for n, s in zip(self.names, spent, strict=False)]
        print(f"    CPU ms per request: {', '.join(parts)}, load generator "
              f"{spent[-1] * 1e3 / max(ok, 1):.3f}", flush=True)  # fmt: skip


def write_load(cluster: Cluster, seconds: float, client_counts: list[int]) -> list[str]:
    leader = cluster.leader()
    follower = next(n for n in cluster.alive() if n is not leader)
    registered: list[str] = []
    for target, name in ((leader, "leader"), (follower, "follower")):
        for clients in client_counts:
            prefix = f"{name}-{clients}-"
            paths = [f"/skydns/services/{prefix}{i}" for i in range(1_000_000)]
            meter = CPUMeter(cluster, leader)
            ok, failed, lat, elapsed = asyncio.run(
                load(target.http_port, clients, seconds, "PUT", paths, register_body)
            )
            registered += [p.rsplit("/", 1)[1] for p in paths[: ok + failed]]
            show(f"register via {name:<8} {clients:3d} clients", ok, failed, lat, elapsed)
            meter.report(ok)
    return registered


def renew_load(cluster: Cluster, seconds: float, uuids: list[str]) -> None:
    leader = cluster.leader()
    follower = next(n for n in cluster.alive() if n is not leader)
    everyone = [n.http_port for n in cluster.alive()]
    for ports, name in (([leader.http_port], "leader"), ([follower.http_port], "follower"),
                        (everyone, "all nodes")):  # fmt: skip
        paths = [f"/skydns/services/{uuids[i % len(uuids)]}" for i in range(1_000_000)]
        meter = CPUMeter(cluster, leader)
        ok, failed, lat, elapsed = asyncio.run(
            load(ports, 64, seconds, "PATCH", paths, {"TTL": 600})
        )
        show(f"renew via {name:<9}   64 clients", ok, failed, lat, elapsed,
             "; 10,000 instances renewing every 10 s need 1,000/s")  # fmt: skip
        meter.report(ok)


def failover_trial(root: str, trial: int) -> tuple[float, int, int, int]:
    """Seconds from kill -9 of the leader to the first acknowledged write on a
    survivor; acknowledged writes lost; (failed, total) DNS queries at a
    follower meanwhile.  Two writers register without pause, one through the
    leader and one through a follower, from before the kill to after it."""
    cluster = Cluster(root)
    try:
        cluster.start()
        leader = cluster.leader()
        writer, watcher = [n for n in cluster.alive() if n is not leader]
        http("PUT", f"{writer.url}/skydns/services/seed{trial}", BODY)
        stop = threading.Event()
        queries = [0, 0]
        acked: list[str] = []

        def query() -> None:
            while not stop.is_set():
                queries[1] += 1
                try:
                    dns_query("bench.production.skydns.local", "A", watcher.dns_port, timeout=1.0)
                except Exception as e:
                    queries[0] += 1
                    print(f"  DNS query to a follower failed: {e!r}", flush=True)
                time.sleep(0.01)

        def write(node: SkyDNSProcess, name: str) -> None:
            for i in range(100_000):
                if stop.is_set():
                    return
                uuid = f"w{trial}-{name}-{i}"
                try:
                    code, _ = http("PUT", f"{node.url}/skydns/services/{uuid}", BODY, timeout=2.0)
                except OSError:
                    if node is leader:
                        return  # it is gone
                    continue
                if 200 <= code < 300:
                    acked.append(uuid)

        threads = [threading.Thread(target=query),
                   threading.Thread(target=write, args=(leader, "leader")),
                   threading.Thread(target=write, args=(watcher, "follower"))]  # fmt: skip
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        leader.kill()
        killed = time.perf_counter()
        took = float("inf")
        for i in range(200):
            try:
                code, _ = http("PUT", f"{writer.url}/skydns/services/f{trial}-{i}", BODY,
                               timeout=5.0)  # fmt: skip
            except OSError:
                continue
            if 200 <= code < 300:
                took = time.perf_counter() - killed
                acked.append(f"f{trial}-{i}")
                break
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join(10)
        lost = set(acked)
        for node in (writer, watcher):
            _, found = http("GET", f"{node.url}/skydns/services/?query=bench.production"
                            "&consistent=true", timeout=10.0)  # fmt: skip
            held = {item["UUID"] for item in found} if isinstance(found, list) else set()
            assert len(held) >= len(acked) // 2, f"{node.node_id} lists {len(held)} instances"
            lost = lost - held if node is writer else lost | (set(acked) - held)
        return took, len(lost), queries[0], queries[1]
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1,
                        help="run the load part this many times; show medians")  # fmt: skip
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--failover-only", action="store_true")
    args = parser.parse_args()
    client_counts = [int(c) for c in args.clients.split(",")]
    root = tempfile.mkdtemp(prefix="skydns-bench-", dir=os.getcwd())
    try:
        print(f"3 nodes on loopback, data dirs under {root} (fsync on)", flush=True)
        for run in range(0 if args.failover_only else args.runs):
            if args.runs > 1:
                print(f"run {run + 1} of {args.runs}", flush=True)
            cluster = Cluster(root)
            try:
                cluster.start()
                registered = write_load(cluster, args.seconds, client_counts)
                renew_load(cluster, args.seconds, registered[:10_000])
            finally:
                cluster.stop()
        if args.runs > 1 and not args.failover_only:
            print(f"medians over {args.runs} runs:", flush=True)
            show_medians()
        results = []
        for trial in range(args.trials):
            results.append(failover_trial(root, trial))
            took, lost, failed, asked = results[-1]
            print(f"  failover trial {trial}: {took * 1e3:.0f} ms, {lost} acknowledged writes "
                  f"lost, {failed} of {asked} DNS queries failed", flush=True)  # fmt: skip
        times = [r[0] for r in results]
        if not times:
            return
        print(
            f"failover over {len(times)} trials: median {statistics.median(times) * 1e3:.0f} ms, "
            f"min {min(times) * 1e3:.0f} ms, max {max(times) * 1e3:.0f} ms; "
            f"acknowledged writes lost: {sum(r[1] for r in results)}; "
            f"DNS queries failed at a follower: {sum(r[2] for r in results)} "
            f"of {sum(r[3] for r in results)}"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
